// Chat templates against llama.cpp c392e50 (tests/data/chat_templates/, see the README there): its own test cases
// (template text -> family -> formatted conversation, and format_single), every family on thirteen conversations
// with and without the generation prompt, its detection on 1154 texts; SmolLM2's template, names, errors, resolve.
#include <catch2/catch.hpp>

#include <cstddef>
#include <filesystem>
#include <fstream>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "edgespec/io/gguf.hpp"
#include "edgespec/tokenizer/chat_template.hpp"
#include "test_util.hpp"

#ifndef EDGESPEC_TEST_DATA_DIR
#error "EDGESPEC_TEST_DATA_DIR (tests/data) must be defined by the build"
#endif

using edgespec::apply_chat_template;
using edgespec::ChatMessage;
using edgespec::ChatTemplate;
using edgespec::chat_template_name;
using edgespec::detect_chat_template;
using Chat = std::vector<ChatMessage>;

namespace {

// Just enough JSON for the data files: arrays of strings, true/false/null, strings escaped only for '"', '\\'
// and control characters (\uXXXX below 0x80). Malformed input throws, naming the line.
class Json {
 public:
  explicit Json(std::string_view s) : s_(s) {}
  void expect(char c) {
    skip_ws();
    need(p_ < s_.size() && s_[p_] == c, "expected a JSON '", c, "' at byte ", p_);
    ++p_;
  }
  bool peek(char c) {
    skip_ws();
    return p_ < s_.size() && s_[p_] == c;
  }
  bool word(std::string_view w) {
    skip_ws();
    if (s_.substr(p_, w.size()) != w) return false;
    p_ += w.size();
    return true;
  }
  std::string string() {
    expect('"');
    std::string out;
    while (true) {
      need(p_ < s_.size(), "unterminated JSON string");
      const char c = s_[p_++];
      if (c == '"') return out;
      if (c != '\\') {
        out += c;
        continue;
      }
      need(p_ < s_.size(), "unterminated JSON escape");
      switch (const char e = s_[p_++]) {
        case 'n': out += '\n'; break;
        case 'r': out += '\r'; break;
        case 't': out += '\t'; break;
        case 'b': out += '\b'; break;
        case 'f': out += '\f'; break;
        case 'u': {
          need(p_ + 4 <= s_.size(), "short \\u escape");
          const unsigned long cp = std::stoul(std::string(s_.substr(p_, 4)), nullptr, 16);
          need(cp < 0x80, "\\u escape above 0x7f");
          out += static_cast<char>(cp);
          p_ += 4;
          break;
        }
        default: out += e;  // '"', '\\', '/'
      }
    }
  }

 private:
  template <class... Parts>
  void need(bool ok, Parts&&... parts) const {
    if (!ok) edgespec::throw_error("test data: ", std::forward<Parts>(parts)..., " in line ", s_.substr(0, 80));
  }
  void skip_ws() {
    while (p_ < s_.size() && s_[p_] == ' ') ++p_;
  }
  std::string_view s_;
  std::size_t p_ = 0;
};

std::vector<std::string> lines_of(const char* file) {
  const auto path = std::filesystem::path(EDGESPEC_TEST_DATA_DIR) / "chat_templates" / file;
  std::ifstream in(path, std::ios::binary);
  INFO(path.string());
  REQUIRE(in.good());
  std::vector<std::string> out;
  for (std::string line; std::getline(in, line);)
    if (!line.empty()) out.push_back(line);
  REQUIRE(!out.empty());
  return out;
}

// conversations.jsonl: ["id", [["role", "content"], ...]]
const std::map<std::string, Chat>& conversations() {
  static const std::map<std::string, Chat> convs = [] {
    std::map<std::string, Chat> out;
    for (const std::string& line : lines_of("conversations.jsonl")) {
      Json j(line);
      j.expect('[');
      const std::string id = j.string();
      j.expect(',');
      j.expect('[');
      Chat chat;
      while (!j.peek(']')) {
        if (!chat.empty()) j.expect(',');
        j.expect('[');
        ChatMessage m;
        m.role = j.string();
        j.expect(',');
        m.content = j.string();
        j.expect(']');
        chat.push_back(std::move(m));
      }
      out.emplace(id, std::move(chat));
    }
    return out;
  }();
  return convs;
}

const Chat& conversation(const std::string& id) {
  const auto it = conversations().find(id);
  INFO("conversation " << id);
  REQUIRE(it != conversations().end());
  return it->second;
}

}  // namespace

TEST_CASE("chat_template: llama.cpp's test-chat-template cases, detected and formatted", "[chat]") {
  const Chat& six = conversation("six_turns");
  REQUIRE(six.size() == 6);
  std::set<std::string> families;
  int n = 0;
  for (const std::string& line : lines_of("llama_cpp_cases.jsonl")) {  // [name, template, family, expected]
    Json j(line);
    j.expect('[');
    const std::string name = j.string();
    j.expect(',');
    const std::string text = j.string();
    j.expect(',');
    const std::string family = j.string();
    j.expect(',');
    const std::string expected = j.string();
    INFO(name);
    const auto t = detect_chat_template(text);
    REQUIRE(t.has_value());
    CHECK(chat_template_name(*t) == family);
    CHECK(apply_chat_template(*t, six, true) == expected);
    families.insert(family);
    ++n;
  }
  CHECK(n == 30);
  CHECK(families.size() == 27);  // all but llama2-sys, falcon3, zephyr, deepseek3, exaone3, rwkv-world
}

namespace {

// llama.cpp's common_chat_format_single: the text a new message adds to a formatted chat (a "\n" first when the
// past ends with one and a generation prompt is asked for).
std::string format_single(ChatTemplate t, const Chat& past, const ChatMessage& msg, bool add_generation_prompt) {
  const std::string before = past.empty() ? std::string() : apply_chat_template(t, past, false);
  Chat all = past;
  all.push_back(msg);
  const std::string after = apply_chat_template(t, all, add_generation_prompt);
  REQUIRE(after.compare(0, before.size(), before) == 0);
  const bool newline = add_generation_prompt && !before.empty() && before.back() == '\n';
  std::string out = newline ? "\n" : "";
  return out.append(after, before.size());
}

}  // namespace

TEST_CASE("chat_template: llama.cpp's test-chat-template format_single cases", "[chat]") {
  const Chat past = {{"system", "You are a helpful assistant"}, {"user", "Hello"}, {"assistant", "I am assistant"}};
  int n = 0;
  for (const std::string& line : lines_of("format_single.jsonl")) {  // ["system" | "user", template, expected]
    Json j(line);
    j.expect('[');
    const bool user = j.string() == "user";
    j.expect(',');
    const std::string name = j.string();
    j.expect(',');
    const std::string expected = j.string();
    INFO(name << (user ? ": user message after three" : ": system message alone"));
    const ChatTemplate t = edgespec::resolve_chat_template(std::nullopt, name);  // "mistral" is detected: llama2
    if (user) CHECK(format_single(t, past, {"user", "How are you"}, true) == expected);
    else CHECK(format_single(t, {}, {"system", "You are a helpful assistant"}, false) == expected);
    ++n;
  }
  CHECK(n == 21);
}

TEST_CASE("chat_template: every family formats as llama.cpp does", "[chat]") {
  std::map<std::string, int> per_family;
  for (const std::string& line : lines_of("formats.jsonl")) {  // [family, conversation, add_generation_prompt, out]
    Json j(line);
    j.expect('[');
    const std::string family = j.string();
    j.expect(',');
    const std::string conv = j.string();
    j.expect(',');
    const bool gen = j.word("true");
    if (!gen) REQUIRE(j.word("false"));
    j.expect(',');
    const std::string expected = j.string();
    INFO(family << " on " << conv << (gen ? " with" : " without") << " the generation prompt");
    CHECK(apply_chat_template(edgespec::chat_template_from_name(family), conversation(conv), gen) == expected);
    ++per_family[family];
  }
  // Every family, each on the 11 conversations of system/user/assistant turns (gigachat: 9, a system message
  // is first only) and the families that take any role on 2 more, all with and without the generation prompt.
  REQUIRE(per_family.size() == edgespec::kChatTemplates.size());
  for (const ChatTemplate t : edgespec::kChatTemplates) {
    const int expected = t == ChatTemplate::Gigachat ? 18 : edgespec::chat_template_any_role(t) ? 26 : 22;
    CHECK(per_family[std::string(chat_template_name(t))] == expected);
  }
}

TEST_CASE("chat_template: detection as llama.cpp's llm_chat_detect_template", "[chat]") {
  int n = 0;
  for (const std::string& line : lines_of("detection.jsonl")) {  // [text, family or null]
    Json j(line);
    j.expect('[');
    const std::string text = j.string();
    j.expect(',');
    const std::optional<std::string> family = j.word("null") ? std::nullopt : std::optional(j.string());
    INFO("text: " << text);
    const auto t = detect_chat_template(text);
    REQUIRE(t.has_value() == family.has_value());
    if (t) CHECK(chat_template_name(*t) == *family);
    ++n;
  }
  CHECK(n == 1154);
}

TEST_CASE("chat_template: SmolLM2's template is chatml", "[chat]") {
  const edgespec::GgufFile gguf(edgespec::test::model_path("gguf/smollm2-135m-instruct-q4_1.gguf"));
  const auto text = gguf.find_string("tokenizer.chat_template");
  REQUIRE(text.has_value());
  CHECK(detect_chat_template(*text) == ChatTemplate::Chatml);
  const ChatTemplate t = edgespec::resolve_chat_template(*text, std::nullopt);
  REQUIRE(t == ChatTemplate::Chatml);
  const std::string prompt = "What is the capital of France?";
  CHECK(apply_chat_template(t, Chat{{"user", prompt}}, true) ==
        "<|im_start|>user\n" + prompt + "<|im_end|>\n<|im_start|>assistant\n");
}

TEST_CASE("chat_template: names round trip, unknown names are refused", "[chat]") {
  std::set<std::string_view> names;
  for (const ChatTemplate t : edgespec::kChatTemplates) {
    CHECK(edgespec::chat_template_from_name(chat_template_name(t)) == t);
    names.insert(chat_template_name(t));
  }
  CHECK(names.size() == 33);
  CHECK(edgespec::chat_template_from_name("mistral-v3-tekken") == ChatTemplate::MistralV3Tekken);
  // exact names only: no trimming, no case folding, no legacy aliases
  for (const char* bad : {"chatml2", "ChatML", " chatml", "mistral", ""}) {
    INFO(bad);
    CHECK_THROWS_AS(edgespec::chat_template_from_name(bad), edgespec::Error);
  }
  CHECK_THROWS_WITH(edgespec::chat_template_from_name("chatml2"),
                    Catch::Contains("unknown chat template name 'chatml2'") &&
                        Catch::Contains("valid names: chatml, llama2, llama2-sys,") && Catch::Contains("megrez"));
}

TEST_CASE("chat_template: roles a family cannot format are refused", "[chat]") {
  const Chat with_tool = {{"user", "2+2?"}, {"tool", "4"}};
  int refused = 0;
  for (const ChatTemplate t : edgespec::kChatTemplates) {
    INFO(chat_template_name(t));
    if (edgespec::chat_template_any_role(t)) {
      CHECK_NOTHROW(apply_chat_template(t, with_tool, true));
    } else {
      CHECK_THROWS_WITH(apply_chat_template(t, with_tool, true),
                        Catch::Contains("chat template " + std::string(chat_template_name(t))) &&
                            Catch::Contains("message 1 has role 'tool'") &&
                            Catch::Contains("only the roles system, user and assistant"));
      ++refused;
    }
  }
  CHECK(refused == 19);
  CHECK_THROWS_WITH(apply_chat_template(ChatTemplate::Gigachat, conversation("two_systems"), true),
                    Catch::Contains("message 2 has role 'system'") && Catch::Contains("only as the first message"));
  CHECK_THROWS_WITH(apply_chat_template(static_cast<ChatTemplate>(200), Chat{}, true),
                    Catch::Contains("invalid ChatTemplate value 200"));
}

TEST_CASE("chat_template: resolve_chat_template chooses as llama.cpp's tools do", "[chat]") {
  using edgespec::resolve_chat_template;
  const std::string llama3_jinja = "{{ '<|start_header_id|>' + role + '<|end_header_id|>' }}";
  // the override wins, by name or (like --chat-template) by detection on a Jinja text; empty means none
  CHECK(resolve_chat_template(llama3_jinja, "gemma") == ChatTemplate::Gemma);
  CHECK(resolve_chat_template(std::nullopt, "phi4") == ChatTemplate::Phi4);
  CHECK(resolve_chat_template(std::nullopt, llama3_jinja) == ChatTemplate::Llama3);
  CHECK(resolve_chat_template(llama3_jinja, "") == ChatTemplate::Llama3);
  CHECK(resolve_chat_template(std::nullopt, "mistral") == ChatTemplate::Llama2);  // llama.cpp's legacy prefix rule
  // the model's template; none at all (or empty) falls back to chatml
  CHECK(resolve_chat_template(llama3_jinja, std::nullopt) == ChatTemplate::Llama3);
  CHECK(resolve_chat_template(std::nullopt, std::nullopt) == ChatTemplate::Chatml);
  CHECK(resolve_chat_template("", std::nullopt) == ChatTemplate::Chatml);
  // an unknown template is an error, not chatml
  CHECK_THROWS_WITH(resolve_chat_template("{% for m in messages %}{{ m.content }}{% endfor %}", std::nullopt),
                    Catch::Contains("the model's chat template (tokenizer.chat_template, 50 bytes") &&
                        Catch::Contains("is not one edgespec knows") &&
                        Catch::Contains("pass --chat-template NAME") && Catch::Contains("chatml, llama2"));
  CHECK_THROWS_WITH(resolve_chat_template(llama3_jinja, "llama-3"),
                    Catch::Contains("unknown chat template 'llama-3' (--chat-template)") &&
                        Catch::Contains("valid names: chatml"));
}

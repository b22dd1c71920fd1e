// Chat templates as llama.cpp's llama_chat_apply_template formats them (llama.cpp c392e50, src/llama-chat.cpp).
//
// A GGUF model carries its chat template as Jinja text (tokenizer.chat_template). Like llama.cpp without
// --jinja, edgespec does not run Jinja: detect_chat_template recognises one of 33 known families from
// substrings of that text, and apply_chat_template formats messages with code written per family. The output
// is byte-identical to llama.cpp's for every family; the one difference is that a role a family cannot format
// (llama.cpp drops such a message or formats it as an assistant turn) is an edgespec::Error here.
//
//   std::vector<ChatMessage> chat = {{"system", "Be brief."}, {"user", "Hi"}};
//   const ChatTemplate t = resolve_chat_template(gguf.find_string("tokenizer.chat_template"), cli_override);
//   const std::string prompt = apply_chat_template(t, chat, /*add_generation_prompt=*/true);
//
// The prompt is text: special tokens such as <|im_start|> are written out and must be tokenized with special
// tokens parsed (Tokenizer::encode with parse_special). The BOS that starts a prompt comes from the tokenizer;
// three families write "<s>" as text where llama.cpp does: monarch and llama2-sys-bos before later turns,
// gigachat at the very start.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>

#include "edgespec/core/error.hpp"

namespace edgespec {

struct ChatMessage {
  std::string role;  // "system", "user", "assistant"; some families take any role (see chat_template_any_role)
  std::string content;
};

// One value per entry of llama.cpp's LLM_CHAT_TEMPLATES, in its order; chat_template_name gives the name.
enum class ChatTemplate : std::uint8_t {
  Chatml, Llama2, Llama2Sys, Llama2SysBos, Llama2SysStrip, MistralV1, MistralV3, MistralV3Tekken, MistralV7,
  Phi3, Phi4, Falcon3, Zephyr, Monarch, Gemma, Orion, Openchat, Vicuna, VicunaOrca, Deepseek, Deepseek2,
  Deepseek3, CommandR, Llama3, Chatglm3, Chatglm4, Glmedge, Minicpm, Exaone3, RwkvWorld, Granite, Gigachat,
  Megrez,
};

inline constexpr std::array<ChatTemplate, 33> kChatTemplates = {
    ChatTemplate::Chatml,     ChatTemplate::Llama2,          ChatTemplate::Llama2Sys, ChatTemplate::Llama2SysBos,
    ChatTemplate::Llama2SysStrip, ChatTemplate::MistralV1,   ChatTemplate::MistralV3, ChatTemplate::MistralV3Tekken,
    ChatTemplate::MistralV7,  ChatTemplate::Phi3,            ChatTemplate::Phi4,      ChatTemplate::Falcon3,
    ChatTemplate::Zephyr,     ChatTemplate::Monarch,         ChatTemplate::Gemma,     ChatTemplate::Orion,
    ChatTemplate::Openchat,   ChatTemplate::Vicuna,          ChatTemplate::VicunaOrca, ChatTemplate::Deepseek,
    ChatTemplate::Deepseek2,  ChatTemplate::Deepseek3,       ChatTemplate::CommandR,  ChatTemplate::Llama3,
    ChatTemplate::Chatglm3,   ChatTemplate::Chatglm4,        ChatTemplate::Glmedge,   ChatTemplate::Minicpm,
    ChatTemplate::Exaone3,    ChatTemplate::RwkvWorld,       ChatTemplate::Granite,   ChatTemplate::Gigachat,
    ChatTemplate::Megrez,
};
static_assert(
    [] {
      for (std::size_t i = 0; i < kChatTemplates.size(); ++i)
        if (kChatTemplates[i] != static_cast<ChatTemplate>(i)) return false;
      return static_cast<std::size_t>(ChatTemplate::Megrez) + 1 == kChatTemplates.size();
    }(),
    "kChatTemplates must list every ChatTemplate once, in declaration order");

// llama.cpp's name for the family (what --chat-template NAME takes).
[[nodiscard]] constexpr std::string_view chat_template_name(ChatTemplate t) noexcept {
  switch (t) {
    case ChatTemplate::Chatml: return "chatml";
    case ChatTemplate::Llama2: return "llama2";
    case ChatTemplate::Llama2Sys: return "llama2-sys";
    case ChatTemplate::Llama2SysBos: return "llama2-sys-bos";
    case ChatTemplate::Llama2SysStrip: return "llama2-sys-strip";
    case ChatTemplate::MistralV1: return "mistral-v1";
    case ChatTemplate::MistralV3: return "mistral-v3";
    case ChatTemplate::MistralV3Tekken: return "mistral-v3-tekken";
    case ChatTemplate::MistralV7: return "mistral-v7";
    case ChatTemplate::Phi3: return "phi3";
    case ChatTemplate::Phi4: return "phi4";
    case ChatTemplate::Falcon3: return "falcon3";
    case ChatTemplate::Zephyr: return "zephyr";
    case ChatTemplate::Monarch: return "monarch";
    case ChatTemplate::Gemma: return "gemma";
    case ChatTemplate::Orion: return "orion";
    case ChatTemplate::Openchat: return "openchat";
    case ChatTemplate::Vicuna: return "vicuna";
    case ChatTemplate::VicunaOrca: return "vicuna-orca";
    case ChatTemplate::Deepseek: return "deepseek";
    case ChatTemplate::Deepseek2: return "deepseek2";
    case ChatTemplate::Deepseek3: return "deepseek3";
    case ChatTemplate::CommandR: return "command-r";
    case ChatTemplate::Llama3: return "llama3";
    case ChatTemplate::Chatglm3: return "chatglm3";
    case ChatTemplate::Chatglm4: return "chatglm4";
    case ChatTemplate::Glmedge: return "glmedge";
    case ChatTemplate::Minicpm: return "minicpm";
    case ChatTemplate::Exaone3: return "exaone3";
    case ChatTemplate::RwkvWorld: return "rwkv-world";
    case ChatTemplate::Granite: return "granite";
    case ChatTemplate::Gigachat: return "gigachat";
    case ChatTemplate::Megrez: return "megrez";
  }
  return "invalid";
}

// Families that write the role itself as text and so format any role ("tool", "assistant_tool_call", ...).
// The others know system, user and assistant only (gigachat: system only as the first message).
[[nodiscard]] constexpr bool chat_template_any_role(ChatTemplate t) noexcept {
  switch (t) {
    case ChatTemplate::Chatml: case ChatTemplate::Phi3: case ChatTemplate::Phi4: case ChatTemplate::Falcon3:
    case ChatTemplate::Zephyr: case ChatTemplate::Monarch: case ChatTemplate::Gemma: case ChatTemplate::Openchat:
    case ChatTemplate::Llama3: case ChatTemplate::Chatglm3: case ChatTemplate::Chatglm4: case ChatTemplate::Glmedge:
    case ChatTemplate::Granite: case ChatTemplate::Megrez:
      return true;
    default:
      return false;
  }
}

namespace detail {

// Special tokens of deepseek3/deepseek2 and minicpm, as UTF-8 bytes (split where a hex escape would run on).
inline constexpr std::string_view kDeepseekUser = "<\xef\xbd\x9c" "User\xef\xbd\x9c>";            // <｜User｜>
inline constexpr std::string_view kDeepseekAssistant = "<\xef\xbd\x9c" "Assistant\xef\xbd\x9c>";  // <｜Assistant｜>
inline constexpr std::string_view kDeepseekEos =
    "<\xef\xbd\x9c" "end\xe2\x96\x81" "of\xe2\x96\x81" "sentence\xef\xbd\x9c>";  // <｜end▁of▁sentence｜>
inline constexpr std::string_view kMinicpmUser = "<\xe7\x94\xa8\xe6\x88\xb7>";   // <用户>

// "chatml, llama2, ..., megrez": for error messages.
inline std::string chat_template_name_list() {
  std::string out;
  for (const ChatTemplate t : kChatTemplates) {
    if (!out.empty()) out += ", ";
    out += chat_template_name(t);
  }
  return out;
}

// llama.cpp's trim(): isspace() in the C locale, i.e. ' ', \t, \n, \v, \f, \r at either end.
[[nodiscard]] constexpr std::string_view chat_trim(std::string_view s) noexcept {
  constexpr std::string_view space = " \t\n\v\f\r";
  const std::size_t b = s.find_first_not_of(space);
  if (b == std::string_view::npos) return {};
  return s.substr(b, s.find_last_not_of(space) - b + 1);
}

// A message llama.cpp would drop or format as an assistant turn is refused instead.
inline void check_chat_roles(ChatTemplate t, std::span<const ChatMessage> chat) {
  if (chat_template_any_role(t)) return;
  for (std::size_t i = 0; i < chat.size(); ++i) {
    const std::string& r = chat[i].role;
    ES_CHECK(r == "system" || r == "user" || r == "assistant", "chat template ", chat_template_name(t), ": message ",
             i, " has role '", r, "', but this template formats only the roles system, user and assistant");
    ES_CHECK(t != ChatTemplate::Gigachat || r != "system" || i == 0, "chat template gigachat: message ", i,
             " has role 'system', but this template takes a system message only as the first message");
  }
}

// An excerpt of a (possibly long, multi-line) template text for an error message.
inline std::string chat_excerpt(std::string_view s) {
  std::string out;
  for (const char c : s.substr(0, 60)) out += c == '\n' ? ' ' : c;
  return s.size() > 60 ? out + "..." : out;
}

}  // namespace detail

// A family by llama.cpp's name ("chatml", "llama3", ...); an unknown name is an Error listing the valid ones.
[[nodiscard]] inline ChatTemplate chat_template_from_name(std::string_view name) {
  for (const ChatTemplate t : kChatTemplates) {
    if (chat_template_name(t) == name) return t;
  }
  throw_error("unknown chat template name '", name, "'; valid names: ", detail::chat_template_name_list());
}

// The family of a Jinja template text, by llama.cpp's rules in its order (llm_chat_detect_template): the text
// may be a family name; else the first rule below whose substrings it contains wins. nullopt: none matched.
[[nodiscard]] inline std::optional<ChatTemplate> detect_chat_template(std::string_view text) {
  using T = ChatTemplate;
  for (const ChatTemplate t : kChatTemplates) {
    if (chat_template_name(t) == text) return t;
  }
  const auto has = [text](std::string_view s) { return text.find(s) != std::string_view::npos; };
  if (has("<|im_start|>")) return has("<|im_sep|>") ? T::Phi4 : T::Chatml;
  if (text.starts_with("mistral") || has("[INST]")) {
    if (has("[SYSTEM_PROMPT]")) return T::MistralV7;
    // Mistral's official v1, v3 and v3-tekken templates.
    if (has("' [INST] ' + system_message") || has("[AVAILABLE_TOOLS]")) {
      if (has(" [INST]")) return T::MistralV1;
      if (has("\"[INST]\"")) return T::MistralV3Tekken;
      return T::MistralV3;
    }
    // llama2 and its variants, the most specific first.
    if (has("content.strip()")) return T::Llama2SysStrip;
    if (has("bos_token + '[INST]")) return T::Llama2SysBos;
    if (has("<<SYS>>")) return T::Llama2Sys;
    return T::Llama2;
  }
  if (has("<|assistant|>") && has("<|end|>")) return T::Phi3;
  if (has("<|assistant|>") && has("<|user|>")) return has("</s>") ? T::Falcon3 : T::Glmedge;
  if (has("<|user|>") && has("<|endoftext|>")) return T::Zephyr;
  if (has("bos_token + message['role']")) return T::Monarch;
  if (has("<start_of_turn>")) return T::Gemma;
  if (has("'\\n\\nAssistant: ' + eos_token")) return T::Orion;  // the Jinja text holds a backslash and an n
  if (has("GPT4 Correct ")) return T::Openchat;
  if (has("USER: ") && has("ASSISTANT: ")) return has("SYSTEM: ") ? T::VicunaOrca : T::Vicuna;
  if (has("### Instruction:") && has("<|EOT|>")) return T::Deepseek;
  if (has("<|START_OF_TURN_TOKEN|>") && has("<|USER_TOKEN|>")) return T::CommandR;
  if (has("<|start_header_id|>") && has("<|end_header_id|>")) return T::Llama3;
  if (has("[gMASK]sop")) return T::Chatglm3;
  if (has("[gMASK]<sop>")) return T::Chatglm4;
  if (has(detail::kMinicpmUser)) return T::Minicpm;
  if (has("'Assistant: ' + message['content'] + eos_token")) return T::Deepseek2;
  if (has(detail::kDeepseekAssistant) && has(detail::kDeepseekUser) && has(detail::kDeepseekEos)) return T::Deepseek3;
  if (has("[|system|]") && has("[|assistant|]") && has("[|endofturn|]")) return T::Exaone3;
  if (has("rwkv-world")) return T::RwkvWorld;
  if (has("<|start_of_role|>")) return T::Granite;
  if (has("message['role'] + additional_special_tokens[0] + message['content'] + additional_special_tokens[1]")) {
    return T::Gigachat;
  }
  if (has("<|role_start|>")) return T::Megrez;
  return std::nullopt;
}

// The prompt text for `chat`, byte for byte as llm_chat_apply_template writes it. add_generation_prompt appends
// the opening of an assistant turn; the families whose user turn already ends with that cue (mistral-*, llama2*,
// orion, minicpm, rwkv-world) ignore it, as in llama.cpp. Throws for a role the family cannot format.
[[nodiscard]] inline std::string apply_chat_template(ChatTemplate t, std::span<const ChatMessage> chat,
                                                     bool add_generation_prompt) {
  using T = ChatTemplate;
  using detail::chat_trim;
  detail::check_chat_roles(t, chat);
  std::string o;
  const auto add = [&o](auto&&... parts) { (o.append(std::string_view(parts)), ...); };
  const bool gen = add_generation_prompt;
  switch (t) {
    // chatml: <|im_start|>{role}\n{content}<|im_end|>\n ... <|im_start|>assistant\n
    case T::Chatml:
      for (const auto& m : chat) add("<|im_start|>", m.role, "\n", m.content, "<|im_end|>\n");
      if (gen) add("<|im_start|>assistant\n");
      break;

    // mistral-v7: [SYSTEM_PROMPT] {s}[/SYSTEM_PROMPT] [INST] {u}[/INST] " {a}</s>"
    case T::MistralV7:
      for (const auto& m : chat) {
        if (m.role == "system") add("[SYSTEM_PROMPT] ", m.content, "[/SYSTEM_PROMPT]");
        else if (m.role == "user") add("[INST] ", m.content, "[/INST]");
        else add(" ", m.content, "</s>");
      }
      break;

    // mistral-v1: " [INST] {s}\n\n{u} [/INST] {a}</s>"; v3: "[INST] {s}\n\n{u}[/INST] {trim a}</s>";
    // v3-tekken: "[INST]{s}\n\n{u}[/INST]{a}</s>". A turn opens with [INST] before its first message.
    case T::MistralV1: case T::MistralV3: case T::MistralV3Tekken: {
      const std::string_view lead = t == T::MistralV1 ? " " : "";
      const std::string_view trail = t == T::MistralV3Tekken ? "" : " ";
      bool in_turn = false;
      for (const auto& m : chat) {
        if (!in_turn) add(lead, "[INST]", trail);
        in_turn = true;
        if (m.role == "system") add(m.content, "\n\n");
        else if (m.role == "user") add(m.content, lead, "[/INST]");
        else {
          add(trail, t == T::MistralV3 ? chat_trim(m.content) : std::string_view(m.content), "</s>");
          in_turn = false;
        }
      }
      break;
    }

    // llama2: "[INST] {s}\n{u} [/INST]{a}</s>[INST] ..."; -sys: the system as "<<SYS>>\n{s}\n<</SYS>>\n\n";
    // -sys-bos: later turns open with "<s>[INST] "; -sys-strip: every content trimmed. The first [INST] is
    // written even for an empty chat.
    case T::Llama2: case T::Llama2Sys: case T::Llama2SysBos: case T::Llama2SysStrip: {
      bool in_turn = true;
      add("[INST] ");
      for (const auto& m : chat) {
        const std::string_view c = t == T::Llama2SysStrip ? chat_trim(m.content) : std::string_view(m.content);
        if (!in_turn) add(t == T::Llama2SysBos ? "<s>[INST] " : "[INST] ");
        in_turn = true;
        if (m.role == "system") {
          if (t == T::Llama2) add(c, "\n");
          else add("<<SYS>>\n", c, "\n<</SYS>>\n\n");
        } else if (m.role == "user") {
          add(c, " [/INST]");
        } else {
          add(c, "</s>");
          in_turn = false;
        }
      }
      break;
    }

    // phi3: <|{role}|>\n{content}<|end|>\n ... <|assistant|>\n
    case T::Phi3:
      for (const auto& m : chat) add("<|", m.role, "|>\n", m.content, "<|end|>\n");
      if (gen) add("<|assistant|>\n");
      break;

    // phi4: <|im_start|>{role}<|im_sep|>{content}<|im_end|> ... <|im_start|>assistant<|im_sep|>
    case T::Phi4:
      for (const auto& m : chat) add("<|im_start|>", m.role, "<|im_sep|>", m.content, "<|im_end|>");
      if (gen) add("<|im_start|>assistant<|im_sep|>");
      break;

    // falcon3: <|{role}|>\n{content}\n ... <|assistant|>\n
    case T::Falcon3:
      for (const auto& m : chat) add("<|", m.role, "|>\n", m.content, "\n");
      if (gen) add("<|assistant|>\n");
      break;

    // zephyr: <|{role}|>\n{content}<|endoftext|>\n ... <|assistant|>\n
    case T::Zephyr:
      for (const auto& m : chat) add("<|", m.role, "|>\n", m.content, "<|endoftext|>\n");
      if (gen) add("<|assistant|>\n");
      break;

    // monarch: {role}\n{content}</s>\n<s>{role}\n{content}</s>\n ... <s>assistant\n (no <s> before the first)
    case T::Monarch:
      for (std::size_t i = 0; i < chat.size(); ++i) {
        add(i == 0 ? "" : "<s>", chat[i].role, "\n", chat[i].content, "</s>\n");
      }
      if (gen) add("<s>assistant\n");
      break;

    // gemma: <start_of_turn>{user|model}\n{trim content}<end_of_turn>\n ... <start_of_turn>model\n
    // No system turn: the last system content (trimmed) opens the next non-model turn as "{s}\n\n"; a system
    // message with no such turn after it is not written.
    case T::Gemma: {
      std::string_view system;
      for (const auto& m : chat) {
        if (m.role == "system") {
          system = chat_trim(m.content);
          continue;
        }
        const std::string_view role = m.role == "assistant" ? std::string_view("model") : std::string_view(m.role);
        add("<start_of_turn>", role, "\n");
        if (!system.empty() && role != "model") {
          add(system, "\n\n");
          system = {};
        }
        add(chat_trim(m.content), "<end_of_turn>\n");
      }
      if (gen) add("<start_of_turn>model\n");
      break;
    }

    // orion: Human: {s}\n\n{u}\n\nAssistant: </s>{a}</s> (the system content joins the next user turn)
    case T::Orion: {
      std::string_view system;
      for (const auto& m : chat) {
        if (m.role == "system") {
          system = m.content;
        } else if (m.role == "user") {
          add("Human: ");
          if (!system.empty()) add(system, "\n\n");
          system = {};
          add(m.content, "\n\nAssistant: </s>");
        } else {
          add(m.content, "</s>");
        }
      }
      break;
    }

    // openchat: {s}<|end_of_turn|>GPT4 Correct {Role}: {content}<|end_of_turn|> ... GPT4 Correct Assistant:
    // ({Role}: the role with its first letter upper-cased, ASCII only as toupper in the C locale)
    case T::Openchat:
      for (const auto& m : chat) {
        if (m.role == "system") {
          add(m.content, "<|end_of_turn|>");
          continue;
        }
        std::string role = m.role;
        if (!role.empty() && role[0] >= 'a' && role[0] <= 'z') role[0] = static_cast<char>(role[0] - 'a' + 'A');
        add("GPT4 Correct ", role, ": ", m.content, "<|end_of_turn|>");
      }
      if (gen) add("GPT4 Correct Assistant:");
      break;

    // vicuna: {s}\n\nUSER: {u}\nASSISTANT: {a}</s>\n ... ASSISTANT:   (vicuna-orca: SYSTEM: {s}\n)
    case T::Vicuna: case T::VicunaOrca:
      for (const auto& m : chat) {
        if (m.role == "system") {
          if (t == T::VicunaOrca) add("SYSTEM: ", m.content, "\n");
          else add(m.content, "\n\n");
        } else if (m.role == "user") {
          add("USER: ", m.content, "\n");
        } else {
          add("ASSISTANT: ", m.content, "</s>\n");
        }
      }
      if (gen) add("ASSISTANT:");
      break;

    // deepseek: {s}### Instruction:\n{u}\n### Response:\n{a}\n<|EOT|>\n ... ### Response:\n
    case T::Deepseek:
      for (const auto& m : chat) {
        if (m.role == "system") add(m.content);
        else if (m.role == "user") add("### Instruction:\n", m.content, "\n");
        else add("### Response:\n", m.content, "\n<|EOT|>\n");
      }
      if (gen) add("### Response:\n");
      break;

    // command-r: <|START_OF_TURN_TOKEN|><|{SYSTEM|USER|CHATBOT}_TOKEN|>{trim content}<|END_OF_TURN_TOKEN|>
    //            ... <|START_OF_TURN_TOKEN|><|CHATBOT_TOKEN|>
    case T::CommandR:
      for (const auto& m : chat) {
        const std::string_view who = m.role == "system" ? "<|SYSTEM_TOKEN|>"
                                     : m.role == "user" ? "<|USER_TOKEN|>"
                                                        : "<|CHATBOT_TOKEN|>";
        add("<|START_OF_TURN_TOKEN|>", who, chat_trim(m.content), "<|END_OF_TURN_TOKEN|>");
      }
      if (gen) add("<|START_OF_TURN_TOKEN|><|CHATBOT_TOKEN|>");
      break;

    // llama3: <|start_header_id|>{role}<|end_header_id|>\n\n{trim content}<|eot_id|>
    //         ... <|start_header_id|>assistant<|end_header_id|>\n\n
    case T::Llama3:
      for (const auto& m : chat) {
        add("<|start_header_id|>", m.role, "<|end_header_id|>\n\n", chat_trim(m.content), "<|eot_id|>");
      }
      if (gen) add("<|start_header_id|>assistant<|end_header_id|>\n\n");
      break;

    // chatglm3: [gMASK]sop<|{role}|>\n {content} ... <|assistant|>
    case T::Chatglm3:
      add("[gMASK]sop");
      for (const auto& m : chat) add("<|", m.role, "|>\n ", m.content);
      if (gen) add("<|assistant|>");
      break;

    // chatglm4: [gMASK]<sop><|{role}|>\n{content} ... <|assistant|>;  glmedge: the same without [gMASK]<sop>
    case T::Chatglm4: case T::Glmedge:
      if (t == T::Chatglm4) add("[gMASK]<sop>");
      for (const auto& m : chat) add("<|", m.role, "|>\n", m.content);
      if (gen) add("<|assistant|>");
      break;

    // minicpm: {trim s}<用户>{trim u}<AI>{trim a}
    case T::Minicpm:
      for (const auto& m : chat) {
        if (m.role == "user") add(detail::kMinicpmUser, chat_trim(m.content), "<AI>");
        else add(chat_trim(m.content));
      }
      break;

    // deepseek2: {s}\n\nUser: {u}\n\nAssistant: {a}<｜end▁of▁sentence｜> ... Assistant:
    case T::Deepseek2:
      for (const auto& m : chat) {
        if (m.role == "system") add(m.content, "\n\n");
        else if (m.role == "user") add("User: ", m.content, "\n\n");
        else add("Assistant: ", m.content, detail::kDeepseekEos);
      }
      if (gen) add("Assistant:");
      break;

    // deepseek3: {s}\n\n<｜User｜>{u}<｜Assistant｜>{a}<｜end▁of▁sentence｜> ... <｜Assistant｜>
    case T::Deepseek3:
      for (const auto& m : chat) {
        if (m.role == "system") add(m.content, "\n\n");
        else if (m.role == "user") add(detail::kDeepseekUser, m.content);
        else add(detail::kDeepseekAssistant, m.content, detail::kDeepseekEos);
      }
      if (gen) add(detail::kDeepseekAssistant);
      break;

    // exaone3: [|system|]{trim s}[|endofturn|]\n[|user|]{trim u}\n[|assistant|]{trim a}[|endofturn|]\n
    //          ... [|assistant|]
    case T::Exaone3:
      for (const auto& m : chat) {
        if (m.role == "system") add("[|system|]", chat_trim(m.content), "[|endofturn|]\n");
        else if (m.role == "user") add("[|user|]", chat_trim(m.content), "\n");
        else add("[|assistant|]", chat_trim(m.content), "[|endofturn|]\n");
      }
      if (gen) add("[|assistant|]");
      break;

    // rwkv-world: {s}\n\nUser: {u}\n\nAssistant:{a}\n\n (the model's end-of-turn token is "\n\n")
    case T::RwkvWorld:
      for (const auto& m : chat) {
        if (m.role == "user") add("User: ", m.content, "\n\nAssistant:");
        else add(m.content, "\n\n");
      }
      break;

    // granite: <|start_of_role|>{role}<|end_of_role|>{content}<|end_of_text|>\n
    //          ... <|start_of_role|>assistant<|end_of_role|>\n   (role assistant_tool_call: <|tool_call|> first)
    case T::Granite:
      for (const auto& m : chat) {
        add("<|start_of_role|>", m.role, "<|end_of_role|>");
        if (m.role == "assistant_tool_call") add("<|tool_call|>");
        add(m.content, "<|end_of_text|>\n");
      }
      if (gen) add("<|start_of_role|>assistant<|end_of_role|>\n");
      break;

    // gigachat: <s>{s}<|message_sep|>user<|role_sep|>{u}<|message_sep|>available functions<|role_sep|>[]
    //           <|message_sep|>assistant<|role_sep|>{a}<|message_sep|> ... assistant<|role_sep|>
    case T::Gigachat: {
      const bool has_system = !chat.empty() && chat[0].role == "system";
      add("<s>");
      if (has_system) add(chat[0].content, "<|message_sep|>");
      for (std::size_t i = has_system ? 1 : 0; i < chat.size(); ++i) {
        if (chat[i].role == "user") {
          add("user<|role_sep|>", chat[i].content, "<|message_sep|>available functions<|role_sep|>[]<|message_sep|>");
        } else {
          add("assistant<|role_sep|>", chat[i].content, "<|message_sep|>");
        }
      }
      if (gen) add("assistant<|role_sep|>");
      break;
    }

    // megrez: <|role_start|>{role}<|role_end|>{content}<|turn_end|> ... <|role_start|>assistant<|role_end|>
    case T::Megrez:
      for (const auto& m : chat) add("<|role_start|>", m.role, "<|role_end|>", m.content, "<|turn_end|>");
      if (gen) add("<|role_start|>assistant<|role_end|>");
      break;

    default:
      throw_error("apply_chat_template: invalid ChatTemplate value ", static_cast<int>(t));
  }
  return o;
}

// The family to use, chosen as llama.cpp's tools choose it (common_chat_templates_init without --jinja):
//  1. override_name, unless empty: a family name, or (as llama.cpp's --chat-template) a Jinja text to detect;
//  2. else the model's tokenizer.chat_template: absent or empty means chatml (llama.cpp's fallback for a model
//     without a template); otherwise it must be detected. An unrecognised text is an Error naming the fix
//     (llama-cli fails the same way; llama-server instead falls back to chatml with a warning).
[[nodiscard]] inline ChatTemplate resolve_chat_template(std::optional<std::string_view> gguf_template_text,
                                                        std::optional<std::string_view> override_name) {
  if (override_name && !override_name->empty()) {
    if (const auto t = detect_chat_template(*override_name)) return *t;
    throw_error("unknown chat template '", detail::chat_excerpt(*override_name),
                "' (--chat-template): not a template name and no known template detected in it; valid names: ",
                detail::chat_template_name_list());
  }
  if (!gguf_template_text || gguf_template_text->empty()) return ChatTemplate::Chatml;
  if (const auto t = detect_chat_template(*gguf_template_text)) return *t;
  throw_error("the model's chat template (tokenizer.chat_template, ", gguf_template_text->size(), " bytes: '",
              detail::chat_excerpt(*gguf_template_text),
              "') is not one edgespec knows; pass --chat-template NAME with the model's format, one of: ",
              detail::chat_template_name_list());
}

}  // namespace edgespec

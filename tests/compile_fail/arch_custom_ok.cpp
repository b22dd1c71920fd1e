// A valid user-declared architecture compiles (docs/models.md shows it).
#include <edgespec/model/transformer.hpp>
struct MyModel : edgespec::Llama<512, 8, 8, 4, 1408, 32000, 2048> {
  static constexpr float rope_base = 500000.0f;
  static constexpr edgespec::WeightFormat weight = edgespec::WeightFormat::Q8_0;
};
template class edgespec::Transformer<MyModel>;
static_assert(edgespec::head_dim_of<MyModel> == 64 && edgespec::kv_dim_of<MyModel> == 256);
static_assert(edgespec::is_fully_fixed<MyModel> && !edgespec::is_fully_fixed<edgespec::AnyLlama>);

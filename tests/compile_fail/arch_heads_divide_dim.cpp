// n_heads = 6 does not divide dim = 64.
#include <edgespec/model/transformer.hpp>
struct Bad : edgespec::Llama<64, 2, 6, 6, 128, 512, 64> {};
template class edgespec::Transformer<Bad>;

#include <edgespec/speculative/pipeline.hpp>
struct Fast {};
template class edgespec::Pipeline<edgespec::Draft<>, edgespec::Target<>, Fast>;

#include <edgespec/speculative/pipeline.hpp>
template class edgespec::Pipeline<edgespec::Draft<edgespec::NGram<65>>, edgespec::Target<>>;

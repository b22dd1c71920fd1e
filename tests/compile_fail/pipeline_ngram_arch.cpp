#include <edgespec/speculative/pipeline.hpp>
template class edgespec::Pipeline<edgespec::Draft<edgespec::NGram<3>, edgespec::Stories260K>, edgespec::Target<>>;

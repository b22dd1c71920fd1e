#include <edgespec/speculative/pipeline.hpp>
template class edgespec::Pipeline<edgespec::Draft<>, edgespec::DraftLen<4>>;

#include <edgespec/speculative/pipeline.hpp>
template class edgespec::Pipeline<edgespec::Draft<>, edgespec::Target<>, edgespec::Draft<edgespec::OnCPU>>;

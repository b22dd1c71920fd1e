#include <edgespec/speculative/pipeline.hpp>
template class edgespec::Pipeline<edgespec::Draft<>, edgespec::Target<>, edgespec::DraftLen<2>,
                                  edgespec::AdaptiveDraftLen<1, 4>>;

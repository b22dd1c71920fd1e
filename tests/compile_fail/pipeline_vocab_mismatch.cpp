// Both vocabularies known at compile time and different: Stories260K (512) drafting for Stories15M (32000).
#include <edgespec/speculative/pipeline.hpp>
template class edgespec::Pipeline<edgespec::Draft<edgespec::Stories260K>, edgespec::Target<edgespec::Stories15M>>;

// The design card's spellings compile (OnGPU runs on the OpenCL device in builds with OpenCL; these compile-only
// checks see the headers without EDGESPEC_HAS_OPENCL, where OnGPU throws at run time). Overlapped and Split too.
#include <edgespec/edgespec.hpp>
using namespace edgespec;
template class edgespec::Pipeline<Draft<OnGPU>, Target<OnCPU>, DraftLen<4>>;
template class edgespec::Pipeline<Draft<OnGPU>, Target<OnCPU>, DraftLen<4>, Overlapped>;
template class edgespec::Pipeline<Draft<OnCPU>, Target<Split<OnCPU, OnGPU>>, DraftLen<4>>;
template class edgespec::Pipeline<Draft<Stories260K, OnCPU>, Target<Stories260K, OnCPU>, DraftLen<4>>;
template class edgespec::Pipeline<Target<AnyLlama>, Draft<SkipLayers<1, 3>>, AdaptiveDraftLen<1, 8>, EarlyStop<20>>;
static_assert(std::is_same_v<Pipeline<Draft<>, Target<>>::draft_length, DraftLen<4>>);
static_assert(std::is_same_v<Pipeline<DraftLen<2>, Target<>, Draft<>>::draft_length, DraftLen<2>>);
static_assert(std::is_same_v<Pipeline<Draft<SkipLayers<1>>, Target<Stories260K>>::draft_arch, Stories260K>);
// n-gram lookup drafting: no draft model (every member instantiated, the draft-model ones excluded)
template class edgespec::Pipeline<Draft<NGram<3>>, Target<>, DraftLen<4>>;
template class edgespec::Pipeline<Draft<OnCPU, NGram<>>, Target<Stories260K>, AdaptiveDraftLen<1, 8>, StochasticVerify>;
static_assert(Pipeline<Draft<NGram<2>>, Target<>>::ngram_drafter);

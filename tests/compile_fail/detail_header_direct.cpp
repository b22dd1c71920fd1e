// Internal headers refuse direct inclusion.
#include <edgespec/tokenizer/detail/spm.hpp>

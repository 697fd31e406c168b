// libFuzzer entry point for one target, chosen at build time with RALPH_FUZZ_TARGET.
#include "tests/fuzz/fuzz_targets.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, std::size_t size)
{
    return ralph::fuzz::RALPH_FUZZ_TARGET(data, size);
}

#ifndef SOCKWAY_CFUZZERDRIVER_H
#define SOCKWAY_CFUZZERDRIVER_H

#include <stddef.h>
#include <stdint.h>

// libFuzzer's entry for programs that have a main of their own (compiler-rt FuzzerInterface.h).
// SwiftPM points an executable's `main` at the module's entry point, so libFuzzer's own `main` is
// not the one that runs; the targets' `@main` hands over to libFuzzer through this.
int LLVMFuzzerRunDriver(int *argc, char ***argv, int (*callback)(const uint8_t *data, size_t size));

#endif

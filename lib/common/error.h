// Internal error reporting: every public entry point returns through Fail()
// so that relattn_last_error() names the argument at fault.
#ifndef RELATTN_LIB_COMMON_ERROR_H_
#define RELATTN_LIB_COMMON_ERROR_H_

#include "relattn/relattn.h"

namespace relattn {

// Records printf-style message as this thread's last error; returns status.
relattn_status Fail(relattn_status status, const char* format, ...)
    __attribute__((format(printf, 2, 3)));

// Clears this thread's last error; returns RELATTN_OK.
relattn_status Succeed();

}  // namespace relattn

#endif  // RELATTN_LIB_COMMON_ERROR_H_

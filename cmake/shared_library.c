/* librelattn.so is the static library's objects linked whole (cmake/package.cmake); a shared
 * library target needs a source of its own, and this one also checks that the public header
 * compiles as plain C. */
#include "relattn/relattn.h"

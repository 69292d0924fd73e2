/*
 * lib/core/xxh.h - the one place the library includes libxxhash. Every
 * file that hashes includes this header, never <xxhash.h> itself, so that
 * every XXH3 call takes the same code: where libxxhash carries its x86
 * dispatcher (Debian's does; lib/meson.build checks and defines
 * NNH5_XXH_DISPATCH), XXH3_64bits and XXH3_64bits_update become their
 * _dispatch forms, which pick the AVX2 or AVX-512 code at run time: about
 * twice the speed of the default code here (doc/MPI.md, "Runs of
 * 2026-12-04"). Same hashes, same files. tests/symbols.sh fails a build
 * with dispatch whose library still imports the default XXH3_64bits or
 * XXH3_64bits_update.
 */
#ifndef NNH5_CORE_XXH_H
#define NNH5_CORE_XXH_H

#define XXH_STATIC_LINKING_ONLY /* XXH3_state_t's layout: states on the stack */
#include <xxhash.h>
#ifdef NNH5_XXH_DISPATCH
#include <xxh_x86dispatch.h>
#endif

#endif

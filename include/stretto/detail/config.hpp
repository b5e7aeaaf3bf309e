#pragma once
/**
@file
@brief Compiler hints shared by the headers.
*/

/**
@def STRETTO_FLATTEN
Marks a hot loop whose callees (lambdas, `std::vector::push_back`, small accessors) must all be
inlined into it. GCC stops inlining once a translation unit has grown past its budget, so in a
file that instantiates every policy (the registry, `stretto-plan`, the benchmarks) the same loop
otherwise ran about twice as slowly as in a small one. Empty on compilers without the attribute.
*/
#if defined(__GNUC__) || defined(__clang__)
#define STRETTO_FLATTEN __attribute__((flatten))
#else
#define STRETTO_FLATTEN
#endif

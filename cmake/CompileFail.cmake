# multiproc_compile_fail(<source>): proves that misuse fails to compile, with the sentence
# the library promises. The source's first line is `// expect: <regex>`; the misuse sits
# under `#ifdef MULTIPROC_COMPILE_FAIL`. Two tests: without the macro the file must compile
# (so the failure comes from the misuse alone), and with it the compiler's output must
# match the regex.
set(_mp_cf_flags ${CMAKE_CURRENT_BINARY_DIR}/compile_fail_flags.rsp)
file(GENERATE OUTPUT ${_mp_cf_flags} CONTENT
"-std=c++20
-fsyntax-only
-I$<JOIN:$<TARGET_PROPERTY:multiproc_test_main,INCLUDE_DIRECTORIES>,
-I>
-D$<JOIN:$<TARGET_PROPERTY:multiproc_test_main,COMPILE_DEFINITIONS>,
-D>
")

function(multiproc_compile_fail src)
  get_filename_component(stem ${src} NAME_WE)
  file(STRINGS ${src} expect LIMIT_COUNT 1 REGEX "^// expect: ")
  if(NOT expect)
    message(FATAL_ERROR "${src}: the first line must be `// expect: <regex>`")
  endif()
  string(REGEX REPLACE "^// expect: " "" expect "${expect}")
  add_test(NAME "compile-fail: ${stem} (control compiles)"
           COMMAND ${CMAKE_CXX_COMPILER} @${_mp_cf_flags} ${src})
  add_test(NAME "compile-fail: ${stem}"
           COMMAND ${CMAKE_CXX_COMPILER} @${_mp_cf_flags} -DMULTIPROC_COMPILE_FAIL ${src})
  set_tests_properties("compile-fail: ${stem}" PROPERTIES PASS_REGULAR_EXPRESSION "${expect}"
                       LABELS compile_fail TIMEOUT 120)
  set_tests_properties("compile-fail: ${stem} (control compiles)" PROPERTIES LABELS compile_fail TIMEOUT 120)
endfunction()

# libFuzzer targets: every tests/fuzz/fuzz_*.c is one executable (ci/fuzz builds and runs them).
file(GLOB _fuzz CONFIGURE_DEPENDS ${CMAKE_SOURCE_DIR}/tests/fuzz/fuzz_*.c)
foreach(f ${_fuzz})
  get_filename_component(_name ${f} NAME_WE)
  add_executable(${_name} ${f})
  target_link_libraries(${_name} PRIVATE rb_worker rb_hive rb_engine rb_net rb_chat)
  # fuzz_routes runs a worker and a hive in-process and calls their route tables.
  target_include_directories(${_name} PRIVATE ${CMAKE_SOURCE_DIR}/src/worker
                                              ${CMAKE_SOURCE_DIR}/src/hive)
  target_link_options(${_name} PRIVATE -fsanitize=fuzzer)
  target_compile_definitions(${_name} PRIVATE RB_SOURCE_DIR="${CMAKE_SOURCE_DIR}")
endforeach()

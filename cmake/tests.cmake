# Tests: every tests/<kind>/test_*.c is one Check executable, labelled by its folder.
# Each test has a ctest TIMEOUT; Check's per-case timeouts are set inside the suites.
# An executable that exits 77 could not run its tests here (data or a CPU feature missing):
# ctest reports it as skipped, not passed (SKIP_RETURN_CODE).
set(RB_TEST_LIBS rb_base rb_net rb_engine rb_chat rb_worker rb_hive rb_keeper)

file(GLOB _support CONFIGURE_DEPENDS ${CMAKE_SOURCE_DIR}/tests/support/*.c)
add_library(rb_testsupport STATIC ${_support})
target_include_directories(rb_testsupport PUBLIC ${CMAKE_SOURCE_DIR}/tests/support)
target_link_libraries(rb_testsupport PUBLIC PkgConfig::CHECK rb_net rb_engine PkgConfig::JANSSON)
target_compile_definitions(rb_testsupport PUBLIC
  RB_SOURCE_DIR="${CMAKE_SOURCE_DIR}" RB_BIN_DIR="${CMAKE_BINARY_DIR}")

set(RB_TIMEOUT_unit 120)
set(RB_TIMEOUT_integration 300)
set(RB_TIMEOUT_e2e 600)

set(RB_TIMEOUT_load 300)

foreach(kind unit integration e2e load)
  file(GLOB _tests CONFIGURE_DEPENDS ${CMAKE_SOURCE_DIR}/tests/${kind}/test_*.c)
  foreach(t ${_tests})
    get_filename_component(_name ${t} NAME_WE)
    set(_exe ${kind}_${_name})
    add_executable(${_exe} ${t})
    # White-box tests may include a module's private headers.
    target_include_directories(${_exe} PRIVATE ${CMAKE_SOURCE_DIR}/src/base ${CMAKE_SOURCE_DIR}/src/net
      ${CMAKE_SOURCE_DIR}/src/engine ${CMAKE_SOURCE_DIR}/src/worker
      ${CMAKE_SOURCE_DIR}/src/hive ${CMAKE_SOURCE_DIR}/src/keeper ${CMAKE_SOURCE_DIR}/src/chat)
    target_link_libraries(${_exe} PRIVATE rb_testsupport ${RB_TEST_LIBS} PkgConfig::CHECK)
    set_property(GLOBAL APPEND PROPERTY RB_ALL_TARGETS ${_exe})
    add_test(NAME ${kind}/${_name} COMMAND ${_exe})
    set_tests_properties(${kind}/${_name} PROPERTIES LABELS ${kind}
      TIMEOUT ${RB_TIMEOUT_${kind}} ENVIRONMENT "CK_FORK=yes" SKIP_RETURN_CODE 77)
  endforeach()
endforeach()

get_property(_all GLOBAL PROPERTY RB_ALL_TARGETS)

# Node tests: the worker's OpenAI routes against the official `openai` SDK pinned in
# tests/node/package-lock.json (ci/install-deps runs npm ci). Skipped (77) without node.
file(GLOB _node_tests CONFIGURE_DEPENDS ${CMAKE_SOURCE_DIR}/tests/node/*.test.mjs)
foreach(t ${_node_tests})
  get_filename_component(_name ${t} NAME_WE)
  string(REPLACE "." "_" _name ${_name})
  add_test(NAME integration/node_${_name}
    COMMAND ${CMAKE_SOURCE_DIR}/tests/node/run ${CMAKE_BINARY_DIR} ${t})
  set_tests_properties(integration/node_${_name} PROPERTIES LABELS integration
    TIMEOUT ${RB_TIMEOUT_integration} SKIP_RETURN_CODE 77)
endforeach()

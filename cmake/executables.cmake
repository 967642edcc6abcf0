# Executables are thin: argument parsing and a call into their module's library.
# Each one is declared only once its main() exists, so the tree builds at every step.
set_property(GLOBAL PROPERTY RB_ALL_TARGETS "")

function(rb_add_exe name src)
  if(EXISTS ${CMAKE_SOURCE_DIR}/${src})
    add_executable(${name} ${src})
    target_link_libraries(${name} PRIVATE ${ARGN})
    set_property(GLOBAL APPEND PROPERTY RB_ALL_TARGETS ${name})
  endif()
endfunction()

rb_add_exe(rbee            src/keeper/main/rbee.c            rb_keeper)
rb_add_exe(rbee-hive       src/hive/main/rbee-hive.c         rb_hive)
rb_add_exe(llm-worker-rbee src/worker/main/llm-worker-rbee.c rb_worker)
rb_add_exe(rbee-gguf       src/tools/rbee-gguf.c             rb_engine rb_chat)
rb_add_exe(rbee-bench      src/tools/rbee-bench.c            rb_engine rb_net)
if(TARGET rbee-gguf)
  target_sources(rbee-gguf PRIVATE src/tools/gguf_cmds.c)
endif()
if(TARGET rbee-bench)
  target_sources(rbee-bench PRIVATE src/tools/bench_engine.c src/tools/bench_stream.c
                                    src/tools/bench_memory.c)
endif()
rb_add_exe(mock-hive       mock/mock-hive.c                  rb_net)
rb_add_exe(mock-worker     mock/mock-worker.c                rb_net)
rb_add_exe(mock-files      mock/mock-files.c                 rb_net)

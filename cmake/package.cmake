# Installation (cmake --install) and the Debian package (cpack -G DEB), issue 16:
#   bin/                      the three binaries and the two tools
#   share/rbee/models/        the bundled model (found there from bin/, docs/hive.md)
#   share/doc/rbee/           README, docs/*.md and an example /etc/rbee/rbee-hive.env
#   lib/systemd/system/       rbee-hive.service
include(GNUInstallDirs)
foreach(t rbee rbee-hive llm-worker-rbee rbee-gguf rbee-bench)
  if(TARGET ${t})
    install(TARGETS ${t} RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR})
  endif()
endforeach()
install(FILES ${CMAKE_SOURCE_DIR}/models/kjv-5m-q8_0.gguf DESTINATION share/rbee/models)
file(GLOB _docs ${CMAKE_SOURCE_DIR}/docs/*.md)
install(FILES ${CMAKE_SOURCE_DIR}/README.md ${_docs} DESTINATION share/doc/rbee)
install(FILES ${CMAKE_SOURCE_DIR}/packaging/rbee-hive.env DESTINATION share/doc/rbee
        RENAME rbee-hive.env.example)
install(FILES ${CMAKE_SOURCE_DIR}/packaging/rbee-hive.service DESTINATION lib/systemd/system)

set(CPACK_GENERATOR DEB)
set(CPACK_PACKAGE_NAME rbee)
set(CPACK_PACKAGE_VERSION ${PROJECT_VERSION})
set(CPACK_PACKAGE_DESCRIPTION_SUMMARY "home-lab LLM inference orchestrator (rbee, rbee-hive, llm-worker-rbee)")
set(CPACK_PACKAGE_CONTACT "rbee maintainers <rbee@localhost>")
set(CPACK_DEBIAN_PACKAGE_MAINTAINER "rbee maintainers <rbee@localhost>")
set(CPACK_DEBIAN_PACKAGE_SECTION misc)
set(CPACK_PACKAGING_INSTALL_PREFIX /usr)
set(CPACK_DEBIAN_FILE_NAME DEB-DEFAULT)
# The runtime libraries of Debian 12 the binaries link (ldd + dpkg -S).
set(CPACK_DEBIAN_PACKAGE_DEPENDS
    "libc6, libmicrohttpd12, libcurl4, libjansson4, libsqlite3-0, libpcre2-8-0, libopenblas0-pthread | libopenblas0")
include(CPack)

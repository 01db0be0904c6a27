# librelattn.so from the static library's objects, and the installed package: headers, both
# libraries, relattnConfig.cmake (find_package(relattn) gives relattn::relattn, the shared
# library, and relattn::relattn_static), relattn.pc (the shared library) and relattn-static.pc
# (librelattn.a and what it needs). Included by the top-level CMakeLists.txt.
include(GNUInstallDirs)
include(CMakePackageConfigHelpers)

# The objects are already position-independent and built with hidden visibility: only the
# RELATTN_API functions (relattn_*) are exported. While MAJOR is 0 every MINOR may change the
# ABI, so the SONAME carries both: librelattn.so.0.3.
add_library(relattn_shared SHARED ${PROJECT_SOURCE_DIR}/cmake/shared_library.c)
target_link_libraries(relattn_shared PRIVATE "$<LINK_LIBRARY:WHOLE_ARCHIVE,relattn>")
target_include_directories(relattn_shared
  PUBLIC $<BUILD_INTERFACE:${PROJECT_SOURCE_DIR}/include> $<INSTALL_INTERFACE:include>)
target_link_options(relattn_shared PRIVATE -Wl,--no-undefined)
set_target_properties(relattn_shared PROPERTIES OUTPUT_NAME relattn EXPORT_NAME relattn
  VERSION ${PROJECT_VERSION} SOVERSION ${PROJECT_VERSION_MAJOR}.${PROJECT_VERSION_MINOR}
  C_VISIBILITY_PRESET hidden)
set_target_properties(relattn PROPERTIES EXPORT_NAME relattn_static)

set(RELATTN_CMAKE_DIR ${CMAKE_INSTALL_LIBDIR}/cmake/relattn)
install(TARGETS relattn relattn_shared EXPORT relattnTargets
  ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR}
  LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR}
  RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR})
install(DIRECTORY ${PROJECT_SOURCE_DIR}/include/relattn
  DESTINATION ${CMAKE_INSTALL_INCLUDEDIR})
install(EXPORT relattnTargets NAMESPACE relattn:: DESTINATION ${RELATTN_CMAKE_DIR})

configure_package_config_file(${PROJECT_SOURCE_DIR}/cmake/relattnConfig.cmake.in
  ${PROJECT_BINARY_DIR}/relattnConfig.cmake INSTALL_DESTINATION ${RELATTN_CMAKE_DIR})
write_basic_package_version_file(${PROJECT_BINARY_DIR}/relattnConfigVersion.cmake
  COMPATIBILITY SameMinorVersion)
install(FILES ${PROJECT_BINARY_DIR}/relattnConfig.cmake
  ${PROJECT_BINARY_DIR}/relattnConfigVersion.cmake DESTINATION ${RELATTN_CMAKE_DIR})

# The .pc files find their prefix from their own place (${pcfiledir}), so the package works under
# any `cmake --install --prefix`. Two files, because one cannot name both libraries: with both
# installed, relattn.pc's `-lrelattn` links librelattn.so even under `pkg-config --static`.
file(RELATIVE_PATH RELATTN_PC_TO_PREFIX
  ${CMAKE_INSTALL_FULL_LIBDIR}/pkgconfig ${CMAKE_INSTALL_PREFIX})
string(REGEX REPLACE "/$" "" RELATTN_PC_TO_PREFIX "${RELATTN_PC_TO_PREFIX}")
foreach(pc relattn relattn-static)
  configure_file(${PROJECT_SOURCE_DIR}/cmake/${pc}.pc.in ${PROJECT_BINARY_DIR}/${pc}.pc @ONLY)
  install(FILES ${PROJECT_BINARY_DIR}/${pc}.pc DESTINATION ${CMAKE_INSTALL_LIBDIR}/pkgconfig)
endforeach()

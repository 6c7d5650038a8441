# Modules kept for the next install of the same sources.
#
# pip builds each install in a new isolated environment, and scikit-build-core then
# clears the CMake cache and starts the build over, so installing an extra later
# (pip install ".[ray]") would compile everything again. Each module built here is
# also copied into the build folder under a key of everything that goes into it: the
# sources, this build's settings, the compiler, Python, pybind11 and OpenBLAS. An
# install that finds its module under the same key installs that file instead of
# building it; any change to the sources or the settings gives a new key and a build.

function(ledkde_kept_key out)
  file(GLOB_RECURSE _inputs "${CMAKE_SOURCE_DIR}/cpp/*" "${CMAKE_SOURCE_DIR}/bindings/*"
       "${CMAKE_SOURCE_DIR}/cuda/*" "${CMAKE_SOURCE_DIR}/cmake/*")
  list(APPEND _inputs "${CMAKE_SOURCE_DIR}/CMakeLists.txt" "${OPENBLAS_INCLUDE_DIR}/openblas_config.h")
  list(SORT _inputs)
  set(_key "${CMAKE_CXX_COMPILER_ID} ${CMAKE_CXX_COMPILER_VERSION} ${CMAKE_BUILD_TYPE} ${CMAKE_CXX_FLAGS}"
           " ${Python_VERSION} ${Python_SOABI} ${pybind11_VERSION} ${OPENBLAS_LIB_NAME} ${CMAKE_SYSTEM_PROCESSOR}")
  foreach(_f IN LISTS _inputs)
    file(SHA256 "${_f}" _h)
    file(RELATIVE_PATH _rel "${CMAKE_SOURCE_DIR}" "${_f}")
    if(_rel MATCHES "^\\.\\.")  # outside the sources (a header of a build requirement): its name
      get_filename_component(_rel "${_f}" NAME)
    endif()
    string(APPEND _key " ${_rel}:${_h}")
  endforeach()
  string(SHA256 _digest "${_key}")
  string(SUBSTRING "${_digest}" 0 24 _digest)
  set(${out} "${CMAKE_BINARY_DIR}/kept/${_digest}" PARENT_SCOPE)
endfunction()

# Installs the kept file of module `name` (with `extra` in its key: settings of that
# module alone) and sets found to TRUE, or sets found to FALSE.
function(ledkde_install_kept name extra found)
  ledkde_kept_key(_dir)
  string(SHA256 _extra "${extra}")
  string(SUBSTRING "${_extra}" 0 12 _extra)
  file(GLOB _file "${_dir}/${name}-${_extra}/${name}*")
  if(_file)
    install(FILES ${_file} DESTINATION ledkde)
    message(STATUS "ledkde: ${name} unchanged since it was built here: the kept module is installed")
    set(${found} TRUE PARENT_SCOPE)
  else()
    set(${found} FALSE PARENT_SCOPE)
  endif()
endfunction()

# After target `name` is built, a copy of its file is kept under the key.
function(ledkde_keep name extra)
  ledkde_kept_key(_dir)
  string(SHA256 _extra "${extra}")
  string(SUBSTRING "${_extra}" 0 12 _extra)
  add_custom_command(TARGET ${name} POST_BUILD
    COMMAND "${CMAKE_COMMAND}" -E make_directory "${_dir}/${name}-${_extra}"
    COMMAND "${CMAKE_COMMAND}" -E copy "$<TARGET_FILE:${name}>" "${_dir}/${name}-${_extra}/"
    VERBATIM)
endfunction()

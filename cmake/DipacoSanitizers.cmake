# DIPACO_SANITIZE=address,undefined (or thread) instruments every C/C++ target.
if(DIPACO_SANITIZE)
  set(_dipaco_san_flags -fsanitize=${DIPACO_SANITIZE} -fno-omit-frame-pointer -fno-sanitize-recover=all)
  add_compile_options("$<$<COMPILE_LANGUAGE:C,CXX>:${_dipaco_san_flags}>")
  add_link_options(-fsanitize=${DIPACO_SANITIZE})
endif()

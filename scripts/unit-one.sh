#!/bin/sh
# Builds and runs one cmocka unit test against only the sources named, with the
# test build's flags and sanitizers, in build/one/. For working on a module while
# other modules are being written:  scripts/unit-one.sh test_smtp_addr src/smtp/smtp_addr.c
set -eu
name=$1; shift
mkdir -p build/one
cc -std=c17 -D_GNU_SOURCE -Wall -Wextra -Werror -Wshadow -Wpointer-arith -Wformat=2 \
   -Wno-format-nonliteral -Wmissing-prototypes -Wstrict-prototypes -Isrc -Itests/unit \
   -O1 -g -fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer \
   -DTERN_TEST_BUILD -o "build/one/$name" "tests/unit/$name.c" "$@" \
   src/util/mem.c src/util/str.c src/util/strbuf.c src/util/log.c src/util/fsops.c \
   src/util/hashmap.c src/util/base64.c -lcmocka -lcrypt -lpthread
exec "build/one/$name"

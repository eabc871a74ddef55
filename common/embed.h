/*  embed: a file's bytes as read-only data, by the assembler's .incbin (no
    generator script, no escaping: the bytes are the file's), followed by a
    NUL, so a .sql file is a C string without leaving its .sql file. The path
    is relative to the repository root, where make runs; the object needs
    `-Wa,-I$(CURDIR)` and a dependency on the file (see the module.mk files).
    At file scope:  EMBED_FILE (symbol, "dir/file.sql")
    and declare it: extern const char symbol[];                               */
#ifndef OMNI_EMBED_H
#define OMNI_EMBED_H

#define EMBED_FILE(symbol, path)                                                                   \
    __asm__(".pushsection .rodata\n"                                                               \
            ".global " #symbol "\n"                                                                \
            ".type " #symbol ", @object\n"                                                         \
            ".balign 16\n" #symbol ":\n"                                                           \
            ".incbin \"" path "\"\n"                                                               \
            ".byte 0\n"                                                                            \
            ".size " #symbol ", . - " #symbol "\n"                                                 \
            ".popsection\n");

#endif

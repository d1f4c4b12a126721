/*
 * External scanner for tree-sitter-enigma.
 *
 * It reads the two tokens a regular expression cannot:
 *
 * - `block_comment`: block comments nest (see the `block_comment` rule of
 *   grammar/enigma.pest), so the scanner counts their depth. An unterminated block comment is not a
 *   token (the compiler reports it as E0006), so the parser reports an error.
 * - `string_content`: the text of a string between escapes. Reading it here
 *   (rather than with a regular expression) keeps `//` and the opening of a block comment inside a
 *   string from being taken for comments, which are valid everywhere.
 *
 * - `unit`: the unit written directly after a number (`2s`, `30Hz`, `80GB`;
 *   grammar/enigma.pest: `unit`, after `number_value`). The units are words,
 *   so as ordinary tokens they would take part in the keyword extraction of
 *   the generated lexer, where `s` and `us` would cut `session` and `use`
 *   short. Here a unit is read only where the parser expects one, only with
 *   no space before it, and only when it is the whole word (pest:
 *   `unit? ~ !ident_char`): `2sx` has no unit.
 *
 * The scanner keeps no state.
 */

#include "tree_sitter/parser.h"

#include <string.h>
#include <wctype.h>

enum TokenType {
  BLOCK_COMMENT,
  STRING_CONTENT,
  UNIT,
  ERROR_SENTINEL,
};

/* grammar/enigma.pest: `unit`. */
static const char *const UNITS[] = {
    "kHz", "Hz", "ms", "us", "min", "s", "KiB", "MiB",
    "GiB", "TiB", "KB",  "MB", "GB", "TB", "B",
};

#define MAX_UNIT_LEN 3

void *tree_sitter_enigma_external_scanner_create(void) { return NULL; }

void tree_sitter_enigma_external_scanner_destroy(void *payload) { (void)payload; }

unsigned tree_sitter_enigma_external_scanner_serialize(void *payload, char *buffer) {
  (void)payload;
  (void)buffer;
  return 0;
}

void tree_sitter_enigma_external_scanner_deserialize(void *payload, const char *buffer,
                                                     unsigned length) {
  (void)payload;
  (void)buffer;
  (void)length;
}

static inline void advance(TSLexer *lexer) { lexer->advance(lexer, false); }

static inline void skip(TSLexer *lexer) { lexer->advance(lexer, true); }

/* The characters of a string up to the closing quote, a backslash (an escape
 * sequence, an internal token) or the end of the line. */
static bool scan_string_content(TSLexer *lexer) {
  bool has_content = false;
  while (!lexer->eof(lexer) && lexer->lookahead != '"' && lexer->lookahead != '\\' &&
         lexer->lookahead != '\n') {
    advance(lexer);
    has_content = true;
  }
  lexer->mark_end(lexer);
  lexer->result_symbol = STRING_CONTENT;
  return has_content;
}

static bool is_ident_char(int32_t c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_';
}

/* A unit right after the digits of a number: the whole word that starts
 * here must be one of UNITS. */
static bool scan_unit(TSLexer *lexer) {
  char word[MAX_UNIT_LEN + 1];
  unsigned len = 0;
  while (is_ident_char(lexer->lookahead)) {
    if (len == MAX_UNIT_LEN) return false;
    word[len++] = (char)lexer->lookahead;
    advance(lexer);
  }
  if (len == 0) return false;
  word[len] = '\0';
  for (unsigned i = 0; i < sizeof(UNITS) / sizeof(UNITS[0]); i++) {
    if (strcmp(word, UNITS[i]) == 0) {
      lexer->mark_end(lexer);
      lexer->result_symbol = UNIT;
      return true;
    }
  }
  return false;
}

/* A block comment, its nested comments included; the lookahead is `/`. */
static bool scan_block_comment(TSLexer *lexer) {
  advance(lexer);
  if (lexer->lookahead != '*') return false;
  advance(lexer);
  unsigned depth = 1;
  while (!lexer->eof(lexer)) {
    if (lexer->lookahead == '*') {
      advance(lexer);
      if (lexer->lookahead == '/') {
        advance(lexer);
        if (--depth == 0) {
          lexer->mark_end(lexer);
          lexer->result_symbol = BLOCK_COMMENT;
          return true;
        }
      }
    } else if (lexer->lookahead == '/') {
      advance(lexer);
      if (lexer->lookahead == '*') {
        advance(lexer);
        depth++;
      }
    } else {
      advance(lexer);
    }
  }
  return false;
}

bool tree_sitter_enigma_external_scanner_scan(void *payload, TSLexer *lexer,
                                              const bool *valid_symbols) {
  (void)payload;
  bool recovering = valid_symbols[ERROR_SENTINEL];

  if (valid_symbols[STRING_CONTENT] && !recovering) {
    return scan_string_content(lexer);
  }

  if (valid_symbols[UNIT] && !recovering && is_ident_char(lexer->lookahead)) {
    return scan_unit(lexer);
  }

  if (valid_symbols[BLOCK_COMMENT]) {
    while (iswspace(lexer->lookahead) || lexer->lookahead == 0xFEFF) skip(lexer);
    if (lexer->lookahead == '/') return scan_block_comment(lexer);
  }

  return false;
}

"""Generates editors/vscode/syntaxes/enigma.tmLanguage.json.

The keyword, unit and builtin lists are read from the compiler's own
sources, so the highlighting cannot drift from the language:

- keywords and units from grammar/enigma.pest (the `keyword` and `unit` rules);
- builtin names from src/resolve/builtins.rs (PRIMITIVES, INITS, ...).

Usage, from the repository root:

    python3 editors/tools/gen_tmlanguage.py          # rewrite the grammar
    python3 editors/tools/gen_tmlanguage.py --check  # exit 1 if it is stale
"""
import json
import pathlib
import re
import sys

ROOT = pathlib.Path(__file__).resolve().parents[2]
OUT = ROOT / "editors" / "vscode" / "syntaxes" / "enigma.tmLanguage.json"
PEST = (ROOT / "grammar" / "enigma.pest").read_text()
BUILTINS = (ROOT / "src" / "resolve" / "builtins.rs").read_text()


def pest_rule_strings(rule):
    """The string literals of one pest rule, in order."""
    m = re.search(r"^" + rule + r"\s*=\s*[_@$!]?\{(.*?)\}\s*$", PEST, re.S | re.M)
    if not m:
        sys.exit(f"rule `{rule}` not found in grammar/enigma.pest")
    return re.findall(r'"([^"]*)"', m.group(1))


def rust_list(name):
    """The string literals of `pub const NAME: &[&str] = &[...]`."""
    m = re.search(r"pub const " + name + r": &\[&str\] = &\[(.*?)\];", BUILTINS, re.S)
    if not m:
        sys.exit(f"list `{name}` not found in src/resolve/builtins.rs")
    body = re.sub(r"//[^\n]*", "", m.group(1))
    return re.findall(r'"([^"]+)"', body)


ID = r"[A-Za-z_][A-Za-z0-9_]*"
KEYWORDS = pest_rule_strings("keyword")
ITEM_KW = ["use", "dim", "let", "data", "modality", "tokenizer", "fn", "module", "model",
           "loss", "metric", "train", "parallel"]
assert set(ITEM_KW) <= set(KEYWORDS), "an item keyword is missing from the grammar"
UNITS = "|".join(pest_rule_strings("unit"))
PRIMITIVES = rust_list("PRIMITIVES")
INITS = rust_list("INITS")
SOURCES = rust_list("SOURCES")
DATA = rust_list("DATA")
OPTIM = rust_list("OPTIMIZERS")
SCHED = rust_list("SCHEDULES")
SYMBOLS = rust_list("SYMBOLS")
LOGICAL = rust_list("LOGICAL_DIMS")
DTYPES = rust_list("DTYPES")
KINDS = ["video", "series", "events", "intervals"]
SCALAR_TYPES = [t for t in rust_list("TYPE_NAMES") if t not in KINDS]
OTHER_KW = [k for k in KEYWORDS if k not in ITEM_KW + ["if", "else", "return", "true", "false", "and", "or", "not"]]


def words(ws):
    return r"\b(?:" + "|".join(sorted(set(ws), key=lambda w: (-len(w), w))) + r")\b"

# The item keywords that start a line; a modality ends before the next one.
NEXT_ITEM = r"(?=^\s*(?:///|//!|(?:" + "|".join(ITEM_KW) + r")\b))|(?=^\s*$)"

g = {
  "$schema": "https://raw.githubusercontent.com/martinring/tmlanguage/master/tmlanguage.json",
  "name": "Enigma",
  "scopeName": "source.enigma",
  "fileTypes": ["enigma"],
  "patterns": [{"include": "#code"}],
  "repository": {
    "code": {"patterns": [
      {"include": "#comments"},
      {"include": "#strings"},
      {"include": "#modality"},
      {"include": "#declarations"},
      {"include": "#numbers"},
      {"include": "#keys"},
      {"include": "#keywords"},
      {"include": "#types"},
      {"include": "#builtins"},
      {"include": "#calls"},
      {"include": "#paths"},
      {"include": "#operators"},
      {"include": "#punctuation"},
    ]},
    "comments": {"patterns": [
      {"name": "comment.line.documentation.inner.enigma",
       "begin": r"//!", "end": r"$",
       "beginCaptures": {"0": {"name": "punctuation.definition.comment.enigma"}},
       "patterns": [{"include": "#doc-markup"}]},
      {"name": "comment.line.documentation.enigma",
       "begin": r"///(?!/)", "end": r"$",
       "beginCaptures": {"0": {"name": "punctuation.definition.comment.enigma"}},
       "patterns": [{"include": "#doc-markup"}]},
      {"name": "comment.line.double-slash.enigma",
       "begin": r"//", "end": r"$",
       "beginCaptures": {"0": {"name": "punctuation.definition.comment.enigma"}}},
      {"include": "#block-comment"},
    ]},
    "doc-markup": {"patterns": [
      {"name": "markup.inline.raw.enigma", "match": r"`[^`]*`"},
    ]},
    "block-comment": {
      "name": "comment.block.enigma",
      "begin": r"/\*", "end": r"\*/",
      "captures": {"0": {"name": "punctuation.definition.comment.enigma"}},
      "patterns": [{"include": "#block-comment"}],
    },
    "strings": {
      "name": "string.quoted.double.enigma",
      "begin": r"\"", "end": r"\"|$",
      "beginCaptures": {"0": {"name": "punctuation.definition.string.begin.enigma"}},
      "endCaptures": {"0": {"name": "punctuation.definition.string.end.enigma"}},
      "patterns": [{"name": "constant.character.escape.enigma", "match": r"\\."}],
    },
    "numbers": {"patterns": [
      {"match": r"\b(\d[\d_]*(?:\.\d[\d_]*)?(?:[eE][+-]?\d+)?)(" + UNITS + r")?\b",
       "captures": {"1": {"name": "constant.numeric.enigma"},
                    "2": {"name": "keyword.other.unit.enigma"}}},
    ]},
    "modality": {
      "comment": "A modality item: the name, then `x` is the implicit element of its `| ...` transforms until the next item or a blank line.",
      "begin": r"\b(modality)\s+(" + ID + r")",
      "beginCaptures": {"1": {"name": "keyword.other.modality.enigma"},
                        "2": {"name": "entity.name.type.modality.enigma"}},
      "end": NEXT_ITEM,
      "patterns": [
        {"include": "#comments"},
        {"include": "#strings"},
        {"name": "keyword.operator.pipe.enigma", "match": r"\|"},
        {"name": "variable.language.element.enigma", "match": r"\bx\b"},
        {"include": "#code"},
      ],
    },
    "declarations": {"patterns": [
      {"include": "#use"},
      {"match": r"\b(dim)\s+(" + ID + r")",
       "captures": {"1": {"name": "keyword.other.dim.enigma"},
                    "2": {"name": "entity.name.type.dim.enigma"}}},
      {"match": r"\b(per)\s+(session)\b",
       "captures": {"1": {"name": "keyword.other.per-session.enigma"},
                    "2": {"name": "keyword.other.per-session.enigma"}}},
      {"match": r"\b(fn)\s+(" + ID + r")",
       "captures": {"1": {"name": "keyword.other.fn.enigma"},
                    "2": {"name": "entity.name.function.enigma"}}},
      {"match": r"\b(module)\s+(" + ID + r")",
       "captures": {"1": {"name": "keyword.other.module.enigma"},
                    "2": {"name": "entity.name.type.module.enigma"}}},
      {"match": r"\b(model)\s+(" + ID + r")",
       "captures": {"1": {"name": "keyword.other.model.enigma"},
                    "2": {"name": "entity.name.type.model.enigma"}}},
      {"match": r"\b(data|tokenizer)\s+(" + ID + r")",
       "captures": {"1": {"name": "keyword.other.$1.enigma"},
                    "2": {"name": "entity.name.variable.$1.enigma"}}},
      {"comment": "loss recon = ..., metric r = ... (an optional label)",
       "match": r"\b(loss|metric)\s+(?:(" + ID + r")\s*(?==(?!=)))?",
       "captures": {"1": {"name": "keyword.other.$1.enigma"},
                    "2": {"name": "entity.name.variable.$1.enigma"}}},
      {"match": r"\b(let|param|predict)\s+(" + ID + r")",
       "captures": {"1": {"name": "keyword.other.$1.enigma"},
                    "2": {"name": "variable.other.definition.enigma"}}},
      {"match": r"\b(train|parallel)\s*(?=\{)",
       "captures": {"1": {"name": "keyword.other.$1.enigma"}}},
    ]},
    "use": {
      "comment": "use std::nn, use std::nn::{Linear as L, RMSNorm}, use blocks::Encoder as Enc; a group may span lines",
      "begin": r"\b(use)\b",
      "beginCaptures": {"1": {"name": "keyword.other.use.enigma"}},
      "end": r"(?=;)|$",
      "patterns": [
        {"include": "#comments"},
        {"begin": r"\{", "end": r"\}",
         "beginCaptures": {"0": {"name": "punctuation.brackets.curly.enigma"}},
         "endCaptures": {"0": {"name": "punctuation.brackets.curly.enigma"}},
         "patterns": [
           {"include": "#comments"},
           {"include": "#use-alias"},
           {"name": "entity.name.type.import.enigma", "match": r"\b[A-Z][A-Za-z0-9_]*\b"},
           {"name": "entity.name.function.import.enigma", "match": r"\b" + ID + r"\b"},
           {"name": "punctuation.separator.comma.enigma", "match": r","},
         ]},
        {"include": "#use-alias"},
        {"name": "punctuation.separator.namespace.enigma", "match": r"::"},
        {"comment": "use std::readout::PerUnit: a CamelCase last segment is an imported item (a module definition)",
         "name": "entity.name.type.import.enigma", "match": r"\b[A-Z][A-Za-z0-9_]*\b(?!\s*::)"},
        {"name": "entity.name.namespace.enigma", "match": r"\b" + ID + r"\b"},
      ],
    },
    "use-alias": {"patterns": [
      {"match": r"\b(as)\s+(" + ID + r")",
       "captures": {"1": {"name": "keyword.other.as.enigma"},
                    "2": {"name": "entity.name.namespace.alias.enigma"}}},
    ]},
    "keys": {"patterns": [
      {"comment": "key: value in settings, named arguments and parameters (keywords allowed); not `::`",
       "match": r"\b(" + ID + r")\s*(:)(?!:)",
       "captures": {"1": {"name": "variable.parameter.key.enigma"},
                    "2": {"name": "punctuation.separator.key-value.enigma"}}},
      {"comment": "a sub-block at the start of a line: checkpoint { ... }, mesh { ... }",
       "match": r"^\s*(?!(?:if|else|" + "|".join(ITEM_KW) + r")\b)(" + ID + r")\s*(?=\{)",
       "captures": {"1": {"name": "variable.parameter.key.enigma"}}},
      {"comment": "a sub-block after another entry: ..., checkpoint { ... }",
       "match": r"([{,;])\s*(?!(?:if|else|" + "|".join(ITEM_KW) + r")\b)(" + ID + r")\s*(?=\{)",
       "captures": {"1": {"patterns": [{"include": "#punctuation"}]},
                    "2": {"name": "variable.parameter.key.enigma"}}},
      {"comment": "a field: v1.video, brain.response (keywords allowed)",
       "match": r"(?<!\.)(\.)(" + ID + r")",
       "captures": {"1": {"name": "punctuation.accessor.enigma"},
                    "2": {"name": "variable.other.member.enigma"}}},
    ]},
    "keywords": {"patterns": [
      {"name": "keyword.control.enigma", "match": words(["if", "else", "return"])},
      {"comment": "keyword.other.<keyword>.enigma: use, dim, ..., as, from, param, predict",
       "name": "keyword.other.$1.enigma", "match": "(" + words(ITEM_KW + OTHER_KW) + ")"},
      {"name": "keyword.operator.logical.enigma", "match": words(["and", "or", "not"])},
      {"name": "constant.language.boolean.enigma", "match": words(["true", "false"])},
    ]},
    "types": {"patterns": [
      {"comment": "video<f32>, series<f32, u8>",
       "match": r"\b(" + "|".join(KINDS) + r")\s*(<)([^<>\n]*)(>)",
       "captures": {"1": {"name": "support.type.modality.enigma"},
                    "2": {"name": "punctuation.definition.generic.begin.enigma"},
                    "3": {"patterns": [{"include": "#types"}, {"include": "#punctuation"}]},
                    "4": {"name": "punctuation.definition.generic.end.enigma"}}},
      {"name": "support.type.modality.enigma", "match": r"\b(?:" + "|".join(KINDS) + r")\b(?=\s*\[)"},
      {"name": "support.type.primitive.dtype.enigma", "match": words(DTYPES)},
      {"comment": "scalar type names only in type position, after `:` or `->`, since `rate` or `bytes` are also good variable names",
       "match": r"(?<=:|->)\s*(" + words(SCALAR_TYPES) + r")",
       "captures": {"1": {"name": "support.type.enigma"}}},
    ]},
    "builtins": {"patterns": [
      {"name": "support.function.builtin.enigma",
       "match": words(PRIMITIVES + INITS + DATA + OPTIM + SCHED) + r"(?=\s*[\(\[])"},
      {"name": "support.function.source.enigma",
       "match": words(SOURCES) + r"(?=\s*[\(.])"},
      {"comment": "symbolic values after a colon: split: val, pipeline_schedule: gpipe",
       "match": r"(?<=:)\s*(" + words(SYMBOLS) + r")",
       "captures": {"1": {"name": "support.constant.enigma"}}},
      {"comment": "logical dims on the left of a parallel mapping",
       "match": words(LOGICAL) + r"(?=\s*(?:,|->))",
       "name": "support.variable.logical-dim.enigma"},
    ]},
    "calls": {"patterns": [
      {"comment": "Module instantiation: CamelCase(...)",
       "match": r"\b([A-Z][A-Za-z0-9_]*)\s*(?=\()",
       "captures": {"1": {"name": "entity.name.type.instance.enigma"}}},
      {"match": r"\b(" + ID + r")\s*(?=\()",
       "captures": {"1": {"name": "entity.name.function.call.enigma"}}},
    ]},
    "paths": {"patterns": [
      {"match": r"\b(" + ID + r")\s*(::)",
       "captures": {"1": {"name": "entity.name.namespace.enigma"},
                    "2": {"name": "punctuation.separator.namespace.enigma"}}},
    ]},
    "operators": {"patterns": [
      {"name": "keyword.operator.arrow.enigma", "match": r"->"},
      {"name": "keyword.operator.rate.enigma", "match": r"@"},
      {"name": "keyword.operator.ellipsis.enigma", "match": r"\.\.\."},
      {"name": "keyword.operator.range.enigma", "match": r"\.\."},
      {"name": "keyword.operator.pipe.enigma", "match": r"\|"},
      {"name": "keyword.operator.comparison.enigma", "match": r"==|!=|<=|>=|<|>"},
      {"name": "keyword.operator.arithmetic.enigma", "match": r"\*\*|[-+*/%]"},
      {"name": "keyword.operator.assignment.enigma", "match": r"="},
    ]},
    "punctuation": {"patterns": [
      {"name": "punctuation.separator.namespace.enigma", "match": r"::"},
      {"name": "punctuation.separator.comma.enigma", "match": r","},
      {"name": "punctuation.terminator.enigma", "match": r";"},
      {"name": "punctuation.separator.colon.enigma", "match": r":"},
      {"name": "punctuation.brackets.round.enigma", "match": r"[()]"},
      {"name": "punctuation.brackets.square.enigma", "match": r"[\[\]]"},
      {"name": "punctuation.brackets.curly.enigma", "match": r"[{}]"},
    ]},
  },
}
text = json.dumps(g, indent=2) + "\n"
if sys.argv[1:] == ["--check"]:
    if not OUT.exists() or OUT.read_text() != text:
        sys.exit(f"{OUT.relative_to(ROOT)} is stale: run python3 editors/tools/gen_tmlanguage.py")
    print(f"{OUT.relative_to(ROOT)} is up to date")
elif sys.argv[1:]:
    sys.exit(__doc__)
else:
    OUT.write_text(text)
    print(f"wrote {OUT.relative_to(ROOT)}")

"""llama.cpp's unigram ("t5", LLAMA_VOCAB_TYPE_UGM) tokenizer, re-implemented from reading
llama.cpp's src/llama-vocab.cpp (llm_tokenizer_ugm, llm_tokenizer_ugm_session), driven only by
the tokenizer.ggml.* metadata of a GGUF file. test_export_gguf_tokenizer runs it on a GGUF
that dipaco exported from a unigram SentencePiece model, so the test checks that the metadata
makes llama.cpp's algorithm segment text like SentencePiece does.

What llama.cpp does, and this file with it:
  normalize: at each input position, the longest key of the precompiled charsmap (a XOR-
    compressed double array, then NUL-terminated replacement strings) is replaced; otherwise
    one UTF-8 character is kept (an invalid byte becomes U+FFFD). Spaces become U+2581; one is
    prepended before the first non-space character when add_space_prefix is set; with
    remove_extra_whitespaces, runs of spaces collapse into the U+2581 that precedes each word.
  segment: Viterbi over the normal, user-defined and unused pieces (scores summed, user-defined
    pieces score 0); a character no piece covers is <unk> with score min(normal) - 10;
    consecutive <unk> merge into one. There is no byte fallback.

Usage: llama_cpp_ugm_reference.py MODEL.gguf TEXTS.json OUT.json
  TEXTS.json is a JSON list of strings; OUT.json receives a list of token id lists.
Standard library only (Debian's /usr/bin/python3).
"""
import json
import struct
import sys

SPACE = "\u2581".encode()
NORMAL, USER_DEFINED, UNUSED = 1, 4, 5


def read_metadata(path):
    """The key/value section of a GGUF v3 file (arrays of u8/i8 come back as bytes)."""
    data = open(path, "rb").read()
    if data[:4] != b"GGUF":
        raise SystemExit(path + ": not a GGUF file")
    pos = 24  # magic, version, tensor count, key/value count
    (count,) = struct.unpack_from("<Q", data, 16)
    scalar = {0: "B", 1: "b", 2: "H", 3: "h", 4: "I", 5: "i", 6: "f", 7: "B", 10: "Q",
              11: "q", 12: "d"}

    def take(fmt):
        nonlocal pos
        values = struct.unpack_from("<" + fmt, data, pos)
        pos += struct.calcsize("<" + fmt)
        return values[0]

    def string():
        nonlocal pos
        n = take("Q")
        pos += n
        return data[pos - n:pos]

    def value(kind):
        nonlocal pos
        if kind in scalar:
            return take(scalar[kind])
        if kind == 8:
            return string()
        if kind == 9:
            item, n = take("I"), take("Q")
            if item in (0, 1):
                pos += n
                return data[pos - n:pos]
            return [value(item) for _ in range(n)]
        raise SystemExit("unknown GGUF value type %d" % kind)

    metadata = {}
    for _ in range(count):
        key = string().decode()
        metadata[key] = value(take("I"))
    return metadata


class CharsMap:
    """The precompiled charsmap: u32 size of the double array, its u32 units, replacements."""

    def __init__(self, blob):
        self.units, self.replacements = [], b""
        if blob:
            (size,) = struct.unpack_from("<I", blob, 0)
            self.units = list(struct.unpack_from("<%dI" % (size // 4), blob, 4))
            self.replacements = blob[4 + size:]

    def _base(self, i):
        unit = self.units[i]
        return (unit >> 10) << ((unit & (1 << 9)) >> 6)

    def longest_match(self, text, start):
        """(length of the longest key at text[start:], its replacement) or (0, None)."""
        if not self.units:
            return 0, None
        best_length, best_offset = 0, 0
        node = self._base(0)
        for at in range(start, len(text)):
            byte = text[at]
            if byte == 0:
                break
            node ^= byte
            if node >= len(self.units) or self.units[node] & ((1 << 31) | 0xFF) != byte:
                break
            is_leaf = (self.units[node] >> 8) & 1
            node ^= self._base(node)
            if is_leaf:
                best_length = at - start + 1
                best_offset = self.units[node] & ((1 << 31) - 1)
        if best_length == 0:
            return 0, None
        end = self.replacements.index(b"\0", best_offset)
        return best_length, self.replacements[best_offset:end]


def utf8_length(first_byte):
    for length, (mask, lead) in ((1, (0x80, 0)), (2, (0xE0, 0xC0)), (3, (0xF0, 0xE0)),
                                 (4, (0xF8, 0xF0))):
        if first_byte & mask == lead:
            return length
    return 1


class Ugm:
    def __init__(self, metadata):
        if metadata["tokenizer.ggml.model"] != b"t5":
            raise SystemExit("tokenizer.ggml.model is not t5")
        self.pieces = list(metadata["tokenizer.ggml.tokens"])
        self.scores = metadata["tokenizer.ggml.scores"]
        self.types = metadata["tokenizer.ggml.token_type"]
        self.unk = metadata["tokenizer.ggml.unknown_token_id"]
        self.add_space_prefix = bool(metadata.get("tokenizer.ggml.add_space_prefix", 0))
        self.merge_spaces = bool(metadata.get("tokenizer.ggml.remove_extra_whitespaces", 0))
        self.charsmap = CharsMap(metadata.get("tokenizer.ggml.precompiled_charsmap", b""))
        self.matchable = {p: i for i, p in enumerate(self.pieces)
                          if self.types[i] in (NORMAL, USER_DEFINED, UNUSED)}
        self.longest_piece = max(len(p) for p in self.matchable)
        normal = [s for s, t in zip(self.scores, self.types) if t == NORMAL]
        self.unknown_score = min(normal) - 10.0

    def normalize(self, text):
        raw, out = text.encode(), bytearray()
        prepended = in_word = False
        at = 0
        while at < len(raw):
            used, replacement = self.charsmap.longest_match(raw, at)
            if used == 0:
                used = utf8_length(raw[at])
                replacement = raw[at:at + used]
                try:
                    replacement.decode()
                except UnicodeDecodeError:
                    used, replacement = 1, "\ufffd".encode()
            for byte in replacement:
                if byte != 0x20:
                    if not in_word:
                        in_word = True
                        if (self.add_space_prefix and not prepended) or self.merge_spaces:
                            out += SPACE
                            prepended = True
                    out.append(byte)
                else:
                    in_word = False
                    if not self.merge_spaces:
                        out += SPACE
            at += used
        return bytes(out)

    def tokenize(self, text):
        s = self.normalize(text)
        n = len(s)
        if n == 0:
            return []
        # best[end] = (token id, start, score) of the best segmentation of s[:end]
        best = [(self.unk, 0, float("-inf"))] * (n + 1)
        best[0] = (self.unk, 0, 0.0)
        at = 0
        while at < n:
            char_length = min(utf8_length(s[at]), n - at)
            covered = False
            for length in range(1, min(self.longest_piece, n - at) + 1):
                token = self.matchable.get(s[at:at + length])
                if token is None:
                    continue
                covered = covered or length == char_length
                score = best[at][2] + (0.0 if self.types[token] == USER_DEFINED
                                       else self.scores[token])
                if score > best[at + length][2]:
                    best[at + length] = (token, at, score)
            if not covered:
                score = best[at][2] + self.unknown_score
                if score > best[at + char_length][2]:
                    best[at + char_length] = (self.unk, at, score)
            at += char_length
        ids, end, previous_unknown = [], n, False
        while True:
            token, start, _ = best[end]
            if not (previous_unknown and token == self.unk):
                ids.append(token)
            if start == 0:
                break
            previous_unknown = token == self.unk
            end = start
        return ids[::-1]


def main():
    if len(sys.argv) != 4:
        raise SystemExit(__doc__)
    ugm = Ugm(read_metadata(sys.argv[1]))
    texts = json.load(open(sys.argv[2], encoding="utf-8"))
    json.dump([ugm.tokenize(t) for t in texts], open(sys.argv[3], "w"))


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""Writes the seed corpora of the fuzz targets (fuzz/corpus/<target>/).

Run from anywhere: python3 fuzz/corpus/make_seeds.py. Every seed is small
(a few kB at most). The GGUF seeds are written byte by byte from the format
(github.com/ggml-org/ggml/blob/master/docs/gguf.md), no library needed."""
import os
import random
import struct

HERE = os.path.dirname(os.path.abspath(__file__))
rng = random.Random(20261129)

# GGUF metadata value types and tensor types (ids as the files store them).
UINT8, INT8, UINT16, INT16, UINT32, INT32, FLOAT32, BOOL, STRING, ARRAY, UINT64, INT64, FLOAT64 = range(13)
SCALAR = {UINT8: "<B", INT8: "<b", UINT16: "<H", INT16: "<h", UINT32: "<I", INT32: "<i", FLOAT32: "<f",
          BOOL: "<?", UINT64: "<Q", INT64: "<q", FLOAT64: "<d"}
# type id: (name, elements per block, bytes per block)
TENSOR_TYPES = {0: ("F32", 1, 4), 1: ("F16", 1, 2), 30: ("BF16", 1, 2), 2: ("Q4_0", 32, 18),
                3: ("Q4_1", 32, 20), 6: ("Q5_0", 32, 22), 7: ("Q5_1", 32, 24), 8: ("Q8_0", 32, 34),
                10: ("Q2_K", 256, 84), 11: ("Q3_K", 256, 110), 12: ("Q4_K", 256, 144),
                13: ("Q5_K", 256, 176), 14: ("Q6_K", 256, 210)}


def string(s):
    b = s.encode() if isinstance(s, str) else s
    return struct.pack("<Q", len(b)) + b


def value(kind, v):
    if kind == STRING:
        return string(v)
    if kind == ARRAY:
        element, items = v
        return struct.pack("<IQ", element, len(items)) + b"".join(value(element, x) for x in items)
    return struct.pack(SCALAR[kind], v)


def gguf(metadata, tensors, version=3, alignment=32):
    """metadata: [(key, kind, value)]; tensors: [(name, dims, type id, data bytes)]."""
    out = b"GGUF" + struct.pack("<IQQ", version, len(tensors), len(metadata))
    for key, kind, v in metadata:
        out += string(key) + struct.pack("<I", kind) + value(kind, v)
    offset, blobs = 0, b""
    for name, dims, kind, data in tensors:
        out += string(name) + struct.pack("<I", len(dims)) + b"".join(struct.pack("<Q", d) for d in dims)
        out += struct.pack("<IQ", kind, offset)
        pad = -len(data) % alignment
        blobs += data + b"\0" * pad
        offset += len(data) + pad
    out += b"\0" * (-len(out) % alignment)
    return out + blobs


def f32(n, scale=0.1):
    return struct.pack("<%df" % n, *(rng.uniform(-scale, scale) for _ in range(n)))


def f16(n):
    return struct.pack("<%de" % n, *(rng.uniform(-1, 1) for _ in range(n)))


def q8_0(n):  # blocks of an f16 scale and 32 int8
    return b"".join(struct.pack("<e", 0.01) + bytes(rng.randrange(256) for _ in range(32)) for _ in range(n // 32))


def random_blocks(kind, n):
    _, elements, size = TENSOR_TYPES[kind]
    return bytes(rng.randrange(256) for _ in range(n // elements * size))


def byte_level(b):  # GPT-2's printable stand-in for a byte
    printable = list(range(33, 127)) + list(range(161, 173)) + list(range(174, 256))
    if b in printable:
        return chr(b)
    return chr(256 + [x for x in range(256) if x not in printable].index(b))


def tiny_llama():
    embd, ff, heads, kv_heads, ctx = 32, 32, 2, 1, 64
    tokens = [byte_level(b) for b in range(256)]
    merges = []
    for word in ["the", "\u0120the", "is", "\u0120is"]:
        left = word[0]
        for c in word[1:]:
            merges.append(left + " " + c)
            left += c
            if left not in tokens:
                tokens.append(left)
    specials = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
    kinds = [1] * len(tokens) + [3] * len(specials)
    tokens += specials
    vocab = len(tokens)
    head_dim = embd // heads
    metadata = [
        ("general.architecture", STRING, "llama"), ("general.name", STRING, "tiny"),
        ("llama.block_count", UINT32, 1), ("llama.context_length", UINT32, ctx),
        ("llama.embedding_length", UINT32, embd), ("llama.feed_forward_length", UINT32, ff),
        ("llama.attention.head_count", UINT32, heads), ("llama.attention.head_count_kv", UINT32, kv_heads),
        ("llama.rope.freq_base", FLOAT32, 10000.0), ("llama.attention.layer_norm_rms_epsilon", FLOAT32, 1e-5),
        ("llama.vocab_size", UINT32, vocab),
        ("tokenizer.ggml.model", STRING, "gpt2"), ("tokenizer.ggml.pre", STRING, "smollm"),
        ("tokenizer.ggml.tokens", ARRAY, (STRING, tokens)), ("tokenizer.ggml.token_type", ARRAY, (INT32, kinds)),
        ("tokenizer.ggml.merges", ARRAY, (STRING, merges)),
        ("tokenizer.ggml.bos_token_id", UINT32, vocab - 3), ("tokenizer.ggml.eos_token_id", UINT32, vocab - 1),
        ("tokenizer.ggml.add_bos_token", BOOL, False),
        ("tokenizer.chat_template", STRING,
         "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\\n' + message['content'] + "
         "'<|im_end|>' + '\\n'}}{% endfor %}"),
    ]
    tensors = [("token_embd.weight", [embd, vocab], 8, q8_0(embd * vocab)),
               ("output_norm.weight", [embd], 0, f32(embd, 1)),
               ("blk.0.attn_norm.weight", [embd], 0, f32(embd, 1)),
               ("blk.0.attn_q.weight", [embd, heads * head_dim], 1, f16(embd * heads * head_dim)),
               ("blk.0.attn_k.weight", [embd, kv_heads * head_dim], 1, f16(embd * kv_heads * head_dim)),
               ("blk.0.attn_v.weight", [embd, kv_heads * head_dim], 8, q8_0(embd * kv_heads * head_dim)),
               ("blk.0.attn_output.weight", [heads * head_dim, embd], 8, q8_0(embd * heads * head_dim)),
               ("blk.0.ffn_norm.weight", [embd], 0, f32(embd, 1)),
               ("blk.0.ffn_gate.weight", [embd, ff], 8, q8_0(embd * ff)),
               ("blk.0.ffn_up.weight", [embd, ff], 8, q8_0(embd * ff)),
               ("blk.0.ffn_down.weight", [ff, embd], 8, q8_0(embd * ff))]
    return gguf(metadata, tensors)


def every_tensor_type():
    tensors = []
    for kind, (name, elements, _) in sorted(TENSOR_TYPES.items()):
        n = max(elements, 32)
        tensors.append((name.lower(), [n], kind, random_blocks(kind, n)))
    tensors.append(("matrix", [32, 2, 1], 0, f32(64)))
    return gguf([("general.alignment", UINT32, 64)], tensors, alignment=64)


def every_value_type(version):
    metadata = [("u8", UINT8, 255), ("i8", INT8, -128), ("u16", UINT16, 65535), ("i16", INT16, -1),
                ("u32", UINT32, 2**32 - 1), ("i32", INT32, -2**31), ("f32", FLOAT32, 1.5),
                ("bool", BOOL, True), ("string", STRING, "h\u00e9llo"), ("u64", UINT64, 2**64 - 1),
                ("i64", INT64, -2**63), ("f64", FLOAT64, -0.25),
                ("ints", ARRAY, (INT64, [1, -2, 3])), ("strings", ARRAY, (STRING, ["a", "", "c"])),
                ("nested", ARRAY, (ARRAY, [(UINT8, [1, 2]), (UINT8, [])])), ("empty", ARRAY, (FLOAT32, []))]
    return gguf(metadata, [], version=version)


def write(target, name, data):
    folder = os.path.join(HERE, target)
    os.makedirs(folder, exist_ok=True)
    with open(os.path.join(folder, name), "wb") as f:
        f.write(data)


def main():
    write("fuzz_gguf", "tiny_llama.gguf", tiny_llama())
    write("fuzz_gguf", "tensor_types.gguf", every_tensor_type())
    write("fuzz_gguf", "values_v2.gguf", every_value_type(2))
    write("fuzz_gguf", "values_v3.gguf", every_value_type(3))
    write("fuzz_gguf", "truncated.gguf", tiny_llama()[:300])

    # FuzzedDataProvider takes integers from the end of the input: the last
    # byte picks the mode (2, 3: encode with tokenizer/special choices before it).
    texts = ["The capital of France is Paris. It is 123 km away!\n\n  Hello\tworld ",
             "<|im_start|>user\nWhat is the capital?<|im_end|>\n<|im_start|>assistant\n",
             "caf\u00e9 \u65e5\u672c\u8a9e \U0001f600 l'\u00e9t\u00e9 don't I'll we're 2024-11-29",
             "\u00a0\u2028\u2029\r\n\x00\x7f tab\tend"]
    for i, text in enumerate(texts):
        write("fuzz_tokenizer", "text%d" % i, text.encode() + bytes([i % 2, 2 + i % 2]))
    write("fuzz_tokenizer", "invalid_utf8", b"ab\xc3\x28 \xed\xa0\x80 \xf4\x90\x80\x80\xc0\xaf" + bytes([0, 2]))
    write("fuzz_tokenizer", "vocabulary", b"\x05a\x01b\x01ab\x02a b\x01\x00\x03\x01\x00" + bytes([0]))

    units_texts = ["Paris is the capital of France. It lies on the Seine!\n\nA new paragraph; with (words).",
                   "\u00bfQu\u00e9? \u201cQuoted.\u201d  Next\u2029para \u65e5\u672c\u8a9e\u3002end"]
    for i, text in enumerate(units_texts):
        write("fuzz_units", "text%d" % i, bytes(rng.randrange(256) for _ in range(24)) + text.encode() +
              bytes(rng.randrange(256) for _ in range(64)) + bytes([i]))

    report_texts = ["<script>alert('x')</script> & \"quotes\" \x1b[31mred\x1b[0m",
                    "caf\u00e9 \xff\xfe broken \u0085 next line \u202e rtl"]
    for i, text in enumerate(report_texts):
        data = text.encode("utf-8", "surrogateescape") if isinstance(text, str) else text
        write("fuzz_reports", "text%d" % i, data + bytes(rng.randrange(256) for _ in range(96)))


if __name__ == "__main__":
    main()

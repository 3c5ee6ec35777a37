// bcrypt ($2b$), as in Provos & Mazières, "A Future-Adaptable Password Scheme" (1999) and
// OpenBSD's bcrypt(3): EksBlowfishSetup(cost, salt, key), then "OrpheanBeholderScryDoubt"
// encrypted 64 times. Used by password_shard; checked against bcryptjs in
// test/unit/bcrypt.test.ts.
//
// The Blowfish state lives in one static block of memory, the P-array (18 words) followed by the
// four S-boxes (256 words each), and the hot loops read it with raw loads: no bounds checks and
// no allocation while hashing.
import { BLOWFISH_PI } from "./blowfish_pi";

/** bcrypt's base64 alphabet (not the standard one, and without padding). */
const ALPHABET = "./ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
const STATE_BYTES: usize = (18 + 4 * 256) * 4;
/** Byte offsets of the S-boxes in the state. */
const S0: usize = 18 * 4;
const S1: usize = S0 + 1024;
const S2: usize = S1 + 1024;
const S3: usize = S2 + 1024;

const state = memory.data(<i32>STATE_BYTES, 16);
/** The key as 18 big-endian words (its bytes repeated to 72), and the salt, likewise. */
const keyWords = memory.data(72, 16);
const saltWords = memory.data(72, 16);

/** Blowfish's round function F on the current S-boxes. */
function feistel(x: u32): u32 {
  const a = load<u32>(state + ((<usize>(x >>> 24)) << 2), S0);
  const b = load<u32>(state + ((<usize>((x >>> 16) & 0xff)) << 2), S1);
  const c = load<u32>(state + ((<usize>((x >>> 8) & 0xff)) << 2), S2);
  const d = load<u32>(state + ((<usize>(x & 0xff)) << 2), S3);
  return ((a + b) ^ c) + d;
}

/** Encrypts the block (l, r) with the current state; returns the encrypted (l, r) as l << 32 | r. */
function encipher(l: u32, r: u32): u64 {
  const p = state;
  l ^= load<u32>(p);
  for (let i: usize = 4; i < 64; i += 8) {
    r ^= feistel(l) ^ load<u32>(p + i);
    l ^= feistel(r) ^ load<u32>(p + i, 4);
  }
  return ((<u64>(r ^ load<u32>(p, 68))) << 32) | l;
}

/**
 * Blowfish's key schedule with the 18 words at `key`: XOR them into the P-array, then replace
 * the P-array and S-boxes in order by successive encryptions of a running block. With `salted`,
 * the block is first XORed with the salt's next two words each time (the "expensive" variant).
 */
function expand(key: usize, salted: bool): void {
  for (let i: usize = 0; i < 72; i += 4) store<u32>(state + i, load<u32>(state + i) ^ load<u32>(key + i));
  let l: u32 = 0;
  let r: u32 = 0;
  for (let i: usize = 0; i < STATE_BYTES; i += 8) {
    if (salted) {
      // The salt's 4 words repeat: word i/4 mod 4 and the next one.
      l ^= load<u32>(saltWords + (i & 15));
      r ^= load<u32>(saltWords + (i & 15), 4);
    }
    const lr = encipher(l, r);
    l = <u32>(lr >>> 32);
    r = <u32>lr;
    store<u32>(state + i, l);
    store<u32>(state + i, r, 4);
  }
}

/** Writes `bytes`, repeated, as 18 big-endian words at `dst`. */
function cycleWords(dst: usize, bytes: Uint8Array, length: i32): void {
  for (let i = 0; i < 72; i++) store<u8>(dst + <usize>(i ^ 3), bytes[i % length]);
}

/** `bytes` in bcrypt's base64: 16 bytes give the 22-character salt, 23 the 31-character hash. */
function encode(bytes: Uint8Array, length: i32): string {
  let out = "";
  let acc: u32 = 0;
  let bits: u32 = 0;
  for (let i = 0; i < length; i++) {
    acc = (acc << 8) | bytes[i];
    bits += 8;
    while (bits >= 6) {
      bits -= 6;
      out += ALPHABET.charAt((acc >>> bits) & 63);
    }
  }
  if (bits > 0) out += ALPHABET.charAt((acc << (6 - bits)) & 63);
  return out;
}

/**
 * The 16 salt bytes of a 22-character bcrypt-base64 salt, or null when `salt` is not one. As in
 * OpenBSD, the low 4 bits of the last character are not part of the salt.
 */
export function decodeSalt(salt: string): Uint8Array | null {
  if (salt.length != 22) return null;
  const out = new Uint8Array(16);
  let acc: u32 = 0;
  let bits: u32 = 0;
  let o = 0;
  for (let i = 0; i < 22; i++) {
    const v = ALPHABET.indexOf(salt.charAt(i));
    if (v < 0) return null;
    acc = (acc << 6) | (<u32>v);
    bits += 6;
    if (bits >= 8 && o < 16) {
      bits -= 8;
      out[o++] = <u8>(acc >>> bits);
    }
  }
  return out;
}

/**
 * The bcrypt hash `$2b$NN$<salt><hash>` of `password` (its bytes, e.g. UTF-8) with cost factor
 * `cost` (4..31: 2^cost rounds of the key schedule) and the 16-byte `salt`. As in $2b$, the key
 * is the password and a NUL byte, truncated to 72 bytes.
 */
export function bcrypt(password: Uint8Array, cost: i32, salt: Uint8Array): string {
  if (cost < 4 || cost > 31 || salt.length != 16) throw new Error("bcrypt: needs a cost of 4..31 and a 16-byte salt");
  const key = new Uint8Array(password.length + 1);
  key.set(password);
  cycleWords(keyWords, key, min(key.length, 72));
  cycleWords(saltWords, salt, 16);

  // EksBlowfishSetup.
  memory.copy(state, changetype<usize>(BLOWFISH_PI), STATE_BYTES);
  expand(keyWords, true);
  const rounds: u64 = (<u64>1) << cost;
  for (let i: u64 = 0; i < rounds; i++) {
    expand(keyWords, false);
    expand(saltWords, false);
  }

  // "OrpheanBeholderScryDoubt", three 64-bit blocks, each encrypted 64 times.
  const text = Uint8Array.wrap(String.UTF8.encode("OrpheanBeholderScryDoubt"));
  const out = new Uint8Array(24);
  for (let b = 0; b < 3; b++) {
    let l = bswap<u32>(load<u32>(text.dataStart + <usize>(8 * b)));
    let r = bswap<u32>(load<u32>(text.dataStart + <usize>(8 * b + 4)));
    for (let i = 0; i < 64; i++) {
      const lr = encipher(l, r);
      l = <u32>(lr >>> 32);
      r = <u32>lr;
    }
    store<u32>(out.dataStart + <usize>(8 * b), bswap<u32>(l));
    store<u32>(out.dataStart + <usize>(8 * b + 4), bswap<u32>(r));
  }

  // Only 23 of the 24 bytes are encoded, as in OpenBSD.
  return "$2b$" + (cost < 10 ? "0" : "") + cost.toString() + "$" + encode(salt, 16) + encode(out, 23);
}

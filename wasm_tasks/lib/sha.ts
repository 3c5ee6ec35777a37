// SHA-256, SHA-512, HMAC-SHA256 and PBKDF2-HMAC-SHA256 (FIPS 180-4, RFC 2104, RFC 8018) for
// AssemblyScript tasks. Checked against node:crypto in test/unit/workloads.test.ts.

const K256: StaticArray<u32> = [
  0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5, 0xd807aa98,
  0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174, 0xe49b69c1, 0xefbe4786,
  0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da, 0x983e5152, 0xa831c66d, 0xb00327c8,
  0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967, 0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13,
  0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85, 0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819,
  0xd6990624, 0xf40e3585, 0x106aa070, 0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a,
  0x5b9cca4f, 0x682e6ff3, 0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7,
  0xc67178f2,
];

const K512: u64[] = [
  0x428a2f98d728ae22, 0x7137449123ef65cd, 0xb5c0fbcfec4d3b2f, 0xe9b5dba58189dbbc, 0x3956c25bf348b538,
  0x59f111f1b605d019, 0x923f82a4af194f9b, 0xab1c5ed5da6d8118, 0xd807aa98a3030242, 0x12835b0145706fbe,
  0x243185be4ee4b28c, 0x550c7dc3d5ffb4e2, 0x72be5d74f27b896f, 0x80deb1fe3b1696b1, 0x9bdc06a725c71235,
  0xc19bf174cf692694, 0xe49b69c19ef14ad2, 0xefbe4786384f25e3, 0x0fc19dc68b8cd5b5, 0x240ca1cc77ac9c65,
  0x2de92c6f592b0275, 0x4a7484aa6ea6e483, 0x5cb0a9dcbd41fbd4, 0x76f988da831153b5, 0x983e5152ee66dfab,
  0xa831c66d2db43210, 0xb00327c898fb213f, 0xbf597fc7beef0ee4, 0xc6e00bf33da88fc2, 0xd5a79147930aa725,
  0x06ca6351e003826f, 0x142929670a0e6e70, 0x27b70a8546d22ffc, 0x2e1b21385c26c926, 0x4d2c6dfc5ac42aed,
  0x53380d139d95b3df, 0x650a73548baf63de, 0x766a0abb3c77b2a8, 0x81c2c92e47edaee6, 0x92722c851482353b,
  0xa2bfe8a14cf10364, 0xa81a664bbc423001, 0xc24b8b70d0f89791, 0xc76c51a30654be30, 0xd192e819d6ef5218,
  0xd69906245565a910, 0xf40e35855771202a, 0x106aa07032bbd1b8, 0x19a4c116b8d2d0c8, 0x1e376c085141ab53,
  0x2748774cdf8eeb99, 0x34b0bcb5e19b48a8, 0x391c0cb3c5c95a63, 0x4ed8aa4ae3418acb, 0x5b9cca4f7763e373,
  0x682e6ff3d6b2b8a3, 0x748f82ee5defb2fc, 0x78a5636f43172f60, 0x84c87814a1f0ab72, 0x8cc702081a6439ec,
  0x90befffa23631e28, 0xa4506cebde82bde9, 0xbef9a3f7b2c67915, 0xc67178f2e372532b, 0xca273eceea26619c,
  0xd186b8c721c0c207, 0xeada7dd6cde0eb1e, 0xf57d4f7fee6ed178, 0x06f067aa72176fba, 0x0a637dc5a2c898a6,
  0x113f9804bef90dae, 0x1b710b35131c471b, 0x28db77f523047d84, 0x32caab7b40c72493, 0x3c9ebe0a15c9bebc,
  0x431d67c49c100d4c, 0x4cc5d4becb3e42b6, 0x597f299cfc657e2a, 0x5fcb6fab3ad6faec, 0x6c44198c4a475817,
];

/** Message padded to whole blocks with its bit length (big-endian) at the end. */
function pad(msg: Uint8Array, block: i32, lenBytes: i32): Uint8Array {
  const total = ((msg.length + 1 + lenBytes + block - 1) / block) * block;
  const out = new Uint8Array(total);
  out.set(msg);
  out[msg.length] = 0x80;
  const bits: u64 = <u64>msg.length * 8;
  for (let i = 0; i < 8; i++) out[total - 1 - i] = <u8>(bits >> (8 * i));
  return out;
}

const IV256: u32[] = [0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19];
const W256 = new Uint32Array(64);

/**
 * One SHA-256 compression of the 64-byte block at `off` into `h`. The hot loop of the password
 * audit, so it works on raw memory: no bounds checks, no calls.
 */
function compress256(h: Uint32Array, data: Uint8Array, off: i32): void {
  const w = W256.dataStart;
  const k = changetype<usize>(K256);
  const src = data.dataStart + <usize>off;
  for (let i: usize = 0; i < 16; i++) store<u32>(w + (i << 2), bswap<u32>(load<u32>(src + (i << 2))));
  for (let i: usize = 16; i < 64; i++) {
    const w15 = load<u32>(w + ((i - 15) << 2));
    const w2 = load<u32>(w + ((i - 2) << 2));
    const s0 = rotr<u32>(w15, 7) ^ rotr<u32>(w15, 18) ^ (w15 >>> 3);
    const s1 = rotr<u32>(w2, 17) ^ rotr<u32>(w2, 19) ^ (w2 >>> 10);
    store<u32>(w + (i << 2), load<u32>(w + ((i - 16) << 2)) + s0 + load<u32>(w + ((i - 7) << 2)) + s1);
  }
  const hp = h.dataStart;
  let a = load<u32>(hp),
    b = load<u32>(hp, 4),
    c = load<u32>(hp, 8),
    d = load<u32>(hp, 12);
  let e = load<u32>(hp, 16),
    f = load<u32>(hp, 20),
    g = load<u32>(hp, 24),
    hh = load<u32>(hp, 28);
  for (let i: usize = 0; i < 64; i++) {
    const t1 =
      hh +
      (rotr<u32>(e, 6) ^ rotr<u32>(e, 11) ^ rotr<u32>(e, 25)) +
      ((e & f) ^ (~e & g)) +
      load<u32>(k + (i << 2)) +
      load<u32>(w + (i << 2));
    const t2 = (rotr<u32>(a, 2) ^ rotr<u32>(a, 13) ^ rotr<u32>(a, 22)) + ((a & b) ^ (a & c) ^ (b & c));
    hh = g;
    g = f;
    f = e;
    e = d + t1;
    d = c;
    c = b;
    b = a;
    a = t1 + t2;
  }
  store<u32>(hp, load<u32>(hp) + a);
  store<u32>(hp, load<u32>(hp, 4) + b, 4);
  store<u32>(hp, load<u32>(hp, 8) + c, 8);
  store<u32>(hp, load<u32>(hp, 12) + d, 12);
  store<u32>(hp, load<u32>(hp, 16) + e, 16);
  store<u32>(hp, load<u32>(hp, 20) + f, 20);
  store<u32>(hp, load<u32>(hp, 24) + g, 24);
  store<u32>(hp, load<u32>(hp, 28) + hh, 28);
}

function iv256(): Uint32Array {
  const h = new Uint32Array(8);
  for (let i = 0; i < 8; i++) h[i] = IV256[i];
  return h;
}

function digest256(h: Uint32Array, out: Uint8Array): void {
  for (let i = 0; i < 8; i++) for (let k = 0; k < 4; k++) out[4 * i + k] = <u8>(h[i] >>> (24 - 8 * k));
}

export function sha256(msg: Uint8Array): Uint8Array {
  const h = iv256();
  const data = pad(msg, 64, 8);
  for (let off = 0; off < data.length; off += 64) compress256(h, data, off);
  const out = new Uint8Array(32);
  digest256(h, out);
  return out;
}

export function sha512(msg: Uint8Array): Uint8Array {
  const h: u64[] = [
    0x6a09e667f3bcc908, 0xbb67ae8584caa73b, 0x3c6ef372fe94f82b, 0xa54ff53a5f1d36f1, 0x510e527fade682d1,
    0x9b05688c2b3e6c1f, 0x1f83d9abfb41bd6b, 0x5be0cd19137e2179,
  ];
  const data = pad(msg, 128, 16);
  const w = new Uint64Array(80);
  for (let off = 0; off < data.length; off += 128) {
    for (let i = 0; i < 16; i++) {
      let v: u64 = 0;
      for (let k = 0; k < 8; k++) v = (v << 8) | (<u64>data[off + 8 * i + k]);
      w[i] = v;
    }
    for (let i = 16; i < 80; i++) {
      const s0 = rotr<u64>(w[i - 15], 1) ^ rotr<u64>(w[i - 15], 8) ^ (w[i - 15] >>> 7);
      const s1 = rotr<u64>(w[i - 2], 19) ^ rotr<u64>(w[i - 2], 61) ^ (w[i - 2] >>> 6);
      w[i] = w[i - 16] + s0 + w[i - 7] + s1;
    }
    let a = h[0],
      b = h[1],
      c = h[2],
      d = h[3],
      e = h[4],
      f = h[5],
      g = h[6],
      hh = h[7];
    for (let i = 0; i < 80; i++) {
      const t1 = hh + (rotr<u64>(e, 14) ^ rotr<u64>(e, 18) ^ rotr<u64>(e, 41)) + ((e & f) ^ (~e & g)) + K512[i] + w[i];
      const t2 = (rotr<u64>(a, 28) ^ rotr<u64>(a, 34) ^ rotr<u64>(a, 39)) + ((a & b) ^ (a & c) ^ (b & c));
      hh = g;
      g = f;
      f = e;
      e = d + t1;
      d = c;
      c = b;
      b = a;
      a = t1 + t2;
    }
    h[0] += a;
    h[1] += b;
    h[2] += c;
    h[3] += d;
    h[4] += e;
    h[5] += f;
    h[6] += g;
    h[7] += hh;
  }
  const out = new Uint8Array(64);
  for (let i = 0; i < 8; i++) for (let k = 0; k < 8; k++) out[8 * i + k] = <u8>(h[i] >> (56 - 8 * k));
  return out;
}

/** The HMAC-SHA256 states after the key's inner and outer pad blocks (RFC 2104). */
function hmacStates(key: Uint8Array): Uint32Array[] {
  const k = new Uint8Array(64);
  k.set(key.length > 64 ? sha256(key) : key);
  const block = new Uint8Array(64);
  const inner = iv256();
  const outer = iv256();
  for (let i = 0; i < 64; i++) block[i] = k[i] ^ 0x36;
  compress256(inner, block, 0);
  for (let i = 0; i < 64; i++) block[i] = k[i] ^ 0x5c;
  compress256(outer, block, 0);
  return [inner, outer];
}

/** Finishes a hash whose first 64 bytes are already in `state`: `msg` follows them. */
function finish(state: Uint32Array, msg: Uint8Array): Uint32Array {
  const h = new Uint32Array(8);
  h.set(state);
  const tail = pad(msg, 64, 8);
  // The length field counts the 64 bytes already hashed.
  const bits: u64 = (<u64>msg.length + 64) * 8;
  for (let i = 0; i < 8; i++) tail[tail.length - 1 - i] = <u8>(bits >> (8 * i));
  for (let off = 0; off < tail.length; off += 64) compress256(h, tail, off);
  return h;
}

export function hmacSha256(key: Uint8Array, msg: Uint8Array): Uint8Array {
  const states = hmacStates(key);
  const inner = new Uint8Array(32);
  digest256(finish(states[0], msg), inner);
  const out = new Uint8Array(32);
  digest256(finish(states[1], inner), out);
  return out;
}

/**
 * PBKDF2-HMAC-SHA256 with a 32-byte derived key (one block). Each iteration after the first
 * costs two compressions and no allocation: the key's pad states are computed once, and a
 * 32-byte message after a 64-byte pad always fits one block.
 */
export function pbkdf2Sha256(password: Uint8Array, salt: Uint8Array, iterations: i32): Uint8Array {
  const states = hmacStates(password);
  const first = new Uint8Array(salt.length + 4);
  first.set(salt);
  first[salt.length + 3] = 1;
  const u = new Uint8Array(32);
  digest256(finish(states[0], first), u);
  digest256(finish(states[1], u), u);
  const out = u.slice();
  // One block: 32 message bytes, 0x80, zeros, and the bit length of 64 + 32 bytes (768).
  const block = new Uint8Array(64);
  block[32] = 0x80;
  block[62] = 0x03;
  const h = new Uint32Array(8);
  for (let i = 1; i < iterations; i++) {
    block.set(u);
    h.set(states[0]);
    compress256(h, block, 0);
    digest256(h, block);
    h.set(states[1]);
    compress256(h, block, 0);
    digest256(h, u);
    for (let j = 0; j < 32; j++) out[j] ^= u[j];
  }
  return out;
}

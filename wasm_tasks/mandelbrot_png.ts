// mandelbrot_png: assembles the tiles of `mandelbrot_tile` (inputs.tile, in index order) into
// one indexed-colour PNG (colour type 3, 8 bits: the tiles' bytes are palette indices) and
// outputs it. The PNG uses stored (uncompressed) deflate blocks: no compression library is
// needed and the bytes are the same on every machine.
import { envelope } from "./lib/json";
import { fromBase64 } from "./lib/bytes";

const CRC_TABLE = new Uint32Array(256);
for (let n: u32 = 0; n < 256; n++) {
  let c = n;
  for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
  CRC_TABLE[n] = c;
}

function crc32(buf: Uint8Array, start: i32, end: i32): u32 {
  const table = CRC_TABLE.dataStart;
  const p = buf.dataStart;
  let c: u32 = 0xffffffff;
  for (let i = <usize>start; i < <usize>end; i++)
    c = load<u32>(table + (((c ^ (<u32>load<u8>(p + i))) & 0xff) << 2)) ^ (c >>> 8);
  return c ^ 0xffffffff;
}

// The palette: index 0 black (inside the set); 1..255 one cycle of the classic gradient dark
// blue → blue → white → orange → near-black, linearly interpolated between five colours and
// wrapping back to the first, so the cyclic index of mandelbrot_tile has no seam. STOPS are the
// colours' positions in 0..255 (index − 1); the last closes the cycle.
const STOPS: i32[] = [0, 41, 107, 164, 219, 255];
const COLOURS: i32[] = [0, 7, 100, 32, 107, 203, 237, 255, 255, 255, 170, 0, 0, 2, 0, 0, 7, 100];
const PALETTE = new Uint8Array(768);
for (let i = 1, s = 0; i < 256; i++) {
  const q = i - 1;
  while (STOPS[s + 1] <= q) s++;
  const span = STOPS[s + 1] - STOPS[s];
  for (let ch = 0; ch < 3; ch++) {
    const mix = COLOURS[s * 3 + ch] * (STOPS[s + 1] - q) + COLOURS[s * 3 + 3 + ch] * (q - STOPS[s]);
    PALETTE[i * 3 + ch] = <u8>((2 * mix + span) / (2 * span)); // rounded, halves up
  }
}

class Writer {
  buf: Uint8Array;
  pos: i32 = 0;
  constructor(size: i32) {
    this.buf = new Uint8Array(size);
  }
  u8(v: u32): void {
    this.buf[this.pos++] = <u8>v;
  }
  u32be(v: u32): void {
    this.u8(v >>> 24);
    this.u8(v >>> 16);
    this.u8(v >>> 8);
    this.u8(v);
  }
  /** Writes a chunk whose body `body(w)` writes; fills in length and CRC. */
  chunkStart(type: string): i32 {
    this.u32be(0);
    const start = this.pos;
    for (let i = 0; i < 4; i++) this.u8(type.charCodeAt(i));
    return start;
  }
  chunkEnd(start: i32): void {
    const len = this.pos - start - 4;
    this.buf[start - 4] = <u8>(len >>> 24);
    this.buf[start - 3] = <u8>(len >>> 16);
    this.buf[start - 2] = <u8>(len >>> 8);
    this.buf[start - 1] = <u8>len;
    this.u32be(crc32(this.buf, start, this.pos));
  }
}

const env = envelope();
const p = env.get("params");
const width = <i32>p.number("width", 2048);
const height = <i32>p.number("height", 2048);
const side = <i32>Math.round(Math.sqrt(p.number("tiles", 64)));
const tiles = env.get("inputs").get("tile");
const tw = width / side;
const th = height / side;

// Raw scanlines: a filter byte (0) then the row's pixels.
const rowLen = width + 1;
const raw = new Uint8Array(rowLen * height);
for (let t = 0; t < tiles.items.length; t++) {
  const pixels = fromBase64(tiles.items[t].get("$bytes").str);
  const left = (t % side) * tw;
  const top = (t / side) * th;
  for (let y = 0; y < th; y++) {
    raw.set(pixels.subarray(y * tw, (y + 1) * tw), (top + y) * rowLen + 1 + left);
  }
}

const blocks = (raw.length + 65534) / 65535;
const w = new Writer(8 + 25 + 12 + PALETTE.length + 12 + 2 + blocks * 5 + raw.length + 4 + 12);
const signature: u8[] = [137, 80, 78, 71, 13, 10, 26, 10];
for (let i = 0; i < 8; i++) w.u8(signature[i]);
let c = w.chunkStart("IHDR");
w.u32be(width);
w.u32be(height);
w.u8(8); // bit depth
w.u8(3); // indexed colour
w.u8(0);
w.u8(0);
w.u8(0);
w.chunkEnd(c);
c = w.chunkStart("PLTE");
w.buf.set(PALETTE, w.pos);
w.pos += PALETTE.length;
w.chunkEnd(c);
c = w.chunkStart("IDAT");
w.u8(0x78);
w.u8(0x01);
let a: u32 = 1;
let b: u32 = 0;
for (let off = 0; off < raw.length; off += 65535) {
  const len = min(65535, raw.length - off);
  w.u8(off + len >= raw.length ? 1 : 0);
  w.u8(len & 0xff);
  w.u8(len >>> 8);
  w.u8(~len & 0xff);
  w.u8((~len >>> 8) & 0xff);
  w.buf.set(raw.subarray(off, off + len), w.pos);
  w.pos += len;
  // Adler-32, with the modulo taken once per 5552 bytes (the most that cannot overflow).
  const p = raw.dataStart + <usize>off;
  for (let start = 0; start < len; start += 5552) {
    const end = min(len, start + 5552);
    for (let i = start; i < end; i++) {
      a += <u32>load<u8>(p + <usize>i);
      b += a;
    }
    a %= 65521;
    b %= 65521;
  }
}
w.u32be((b << 16) | a);
w.chunkEnd(c);
c = w.chunkStart("IEND");
w.chunkEnd(c);
process.stdout.write(w.buf.buffer.slice(0, w.pos));

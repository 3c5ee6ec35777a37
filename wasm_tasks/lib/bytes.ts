// Byte helpers for AssemblyScript tasks: base64 decoding (dependency outputs that are not JSON
// arrive as {"$bytes": "<base64>"}), hex and UTF-8.

/** Decoding table: base64 character code → 6-bit value, 255 for anything else. */
const B64_VALUES = new Uint8Array(256);
B64_VALUES.fill(255);
for (let i = 0; i < 26; i++) {
  B64_VALUES[65 + i] = <u8>i;
  B64_VALUES[97 + i] = <u8>(26 + i);
}
for (let i = 0; i < 10; i++) B64_VALUES[48 + i] = <u8>(52 + i);
B64_VALUES[43] = 62;
B64_VALUES[47] = 63;

/** Decodes standard base64 (padding optional); works on raw memory, as tiles are megabytes. */
export function fromBase64(s: string): Uint8Array {
  let len = s.length;
  while (len > 0 && s.charCodeAt(len - 1) == 61) len--;
  const out = new Uint8Array((len * 3) >> 2);
  const table = B64_VALUES.dataStart;
  const src = changetype<usize>(s);
  const dst = out.dataStart;
  let acc: u32 = 0;
  let bits: u32 = 0;
  let o: usize = 0;
  for (let i: usize = 0; i < <usize>len; i++) {
    const c = <u32>load<u16>(src + (i << 1));
    const v = c < 256 ? <u32>load<u8>(table + c) : 255;
    if (v == 255) throw new Error("invalid base64");
    acc = (acc << 6) | v;
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      store<u8>(dst + o++, <u8>(acc >> bits));
    }
  }
  return out;
}

/** Lower-case hex of `bytes`. */
export function toHex(bytes: Uint8Array): string {
  const digits = "0123456789abcdef";
  let out = "";
  for (let i = 0; i < bytes.length; i++) {
    out += digits.charAt(bytes[i] >> 4) + digits.charAt(bytes[i] & 15);
  }
  return out;
}

/** UTF-8 bytes of `s`. */
export function utf8(s: string): Uint8Array {
  return Uint8Array.wrap(String.UTF8.encode(s));
}

// Byte helpers for AssemblyScript tasks: base64 decoding (dependency outputs that are not JSON
// arrive as {"$bytes": "<base64>"}), hex and UTF-8.

function b64value(c: i32): i32 {
  if (c >= 65 && c <= 90) return c - 65;
  if (c >= 97 && c <= 122) return c - 71;
  if (c >= 48 && c <= 57) return c + 4;
  if (c == 43) return 62;
  if (c == 47) return 63;
  return -1;
}

/** Decodes standard base64 (padding optional). */
export function fromBase64(s: string): Uint8Array {
  let len = s.length;
  while (len > 0 && s.charCodeAt(len - 1) == 61) len--;
  const out = new Uint8Array((len * 3) >> 2);
  let acc: u32 = 0;
  let bits = 0;
  let o = 0;
  for (let i = 0; i < len; i++) {
    const v = b64value(s.charCodeAt(i));
    if (v < 0) throw new Error("invalid base64");
    acc = (acc << 6) | <u32>v;
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out[o++] = <u8>((acc >> bits) & 0xff);
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

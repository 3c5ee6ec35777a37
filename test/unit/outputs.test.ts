// How outputs are served is decided from their bytes alone, and the page's policy exists once
// for the Worker and once for the assets layer (page/_headers): the two must agree.
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { ROOT } from "../../dev/local";
import { PAGE_CSP } from "../../worker/headers";
import { outputType } from "../../core/abi";

const bytes = (...parts: (number[] | string)[]) =>
  new Uint8Array(parts.flatMap((p) => (typeof p === "string" ? [...p].map((c) => c.charCodeAt(0)) : p)));

describe("outputType", () => {
  it("serves the four raster types by magic number, JSON as JSON, everything else as an attachment", () => {
    expect(outputType(bytes([0x89], "PNG\r\n\x1a\n", "rest"))).toEqual({ type: "image/png", attachment: false });
    expect(outputType(bytes([0xff, 0xd8, 0xff, 0xe0]))).toEqual({ type: "image/jpeg", attachment: false });
    expect(outputType(bytes("GIF89a..."))).toEqual({ type: "image/gif", attachment: false });
    expect(outputType(bytes("GIF87a..."))).toEqual({ type: "image/gif", attachment: false });
    expect(outputType(bytes("RIFF", [1, 2, 3, 4], "WEBPVP8 "))).toEqual({ type: "image/webp", attachment: false });
    expect(outputType(bytes('{"a": [1, 2]}'))).toEqual({ type: "application/json", attachment: false });
    expect(outputType(bytes('"just a string"'))).toEqual({ type: "application/json", attachment: false });
    for (const other of [
      "<svg onload=alert(1)></svg>",
      "<!doctype html><script>x</script>",
      "plain text",
      "RIFF....AVI ",
      "GIF8",
      "",
    ]) {
      expect(outputType(bytes(other)), other).toEqual({ type: "application/octet-stream", attachment: true });
    }
    expect(outputType(new Uint8Array([0xc3, 0x28]))).toEqual({ type: "application/octet-stream", attachment: true });
  });
});

describe("the page's Content-Security-Policy", () => {
  it("page/_headers gives the assets the same policy the Worker gives the pages it serves", () => {
    const headers = readFileSync(join(ROOT, "page", "_headers"), "utf8");
    const line = headers.split("\n").find((l) => l.trim().startsWith("Content-Security-Policy:"));
    expect(line?.trim().slice("Content-Security-Policy:".length).trim()).toBe(PAGE_CSP);
    expect(headers).toMatch(/^\s+X-Content-Type-Options: nosniff$/m);
    expect(headers).toMatch(/^\s+Referrer-Policy: no-referrer$/m);
  });
});

/**
 * The web globals core/ uses, and nothing more: workerd, Node 20 and browsers all have them.
 * Declared by hand so that core compiles with `types: []` (no Node, no Workers, no DOM types):
 * anything else from a runtime fails to compile here and must stay out of core.
 */
declare class TextDecoder {
  constructor(label?: string, options?: { fatal?: boolean; ignoreBOM?: boolean });
  decode(input?: ArrayBufferView | ArrayBuffer, options?: { stream?: boolean }): string;
}
declare class TextEncoder {
  encode(input?: string): Uint8Array;
}
declare function atob(data: string): string;
declare namespace WebAssembly {
  /** Whether the bytes are a valid module (workerd, Node and browsers have it; compiling is another matter). */
  function validate(bytes: ArrayBufferView | ArrayBuffer): boolean;
}

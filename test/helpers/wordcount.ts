/**
 * The word-count workload in JavaScript, written from its definition (not from the tasks' code):
 * counting words, the top words, an English-like text generator and a line-boundary splitter.
 * Used by test/unit/wordcount.test.ts to check wordcount_count and wordcount_top exactly.
 */

/** What wordcount_top outputs. */
export interface TopWords {
  words: number;
  distinct: number;
  top: { word: string; count: number }[];
}

/**
 * The words of `text` and how often each occurs. A word is a maximal run of ASCII letters,
 * lower-cased; any other byte separates words. A string is counted as its UTF-8 bytes would be
 * (every non-ASCII character encodes to bytes ≥ 0x80, which separate words).
 */
export function countWords(text: string | Uint8Array): Map<string, number> {
  const s =
    typeof text === "string" ? text : Buffer.from(text.buffer, text.byteOffset, text.byteLength).toString("latin1");
  const counts = new Map<string, number>();
  for (const [match] of s.matchAll(/[A-Za-z]+/g)) {
    const word = match.toLowerCase();
    counts.set(word, (counts.get(word) ?? 0) + 1);
  }
  return counts;
}

/**
 * The total, the number of distinct words and the `n` most frequent, by count descending then
 * word ascending (byte order: the words are ASCII, so code unit order is byte order).
 */
export function topWords(counts: Map<string, number>, n: number): TopWords {
  let words = 0;
  for (const c of counts.values()) words += c;
  const top = [...counts]
    .sort(([a, ca], [b, cb]) => cb - ca || (a < b ? -1 : a > b ? 1 : 0))
    .slice(0, n)
    .map(([word, count]) => ({ word, count }));
  return { words, distinct: counts.size, top };
}

/** A small deterministic PRNG (mulberry32): floats in [0, 1). */
function random(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const COMMON = (
  "the of and to a in is it you that he was for on are with as I his they be at one have this from or " +
  "had by not word but what some we can out other were all there when up use your how said an each she " +
  "which do their time if will way about many then them write would like so these her long make thing " +
  "see him two has look more day could go come did number sound no most people my over know water than " +
  "call first who may down side been now find don't it's can't café naïve über résumé jalapeño façade"
).split(" ");
const SYLLABLES = (
  "ba be bi bo bu ca ce co da de di do fa fe fi ga go ha he hi ho ka ke la le li lo lu ma me mi mo " +
  "na ne ni no pa pe pi po ra re ri ro sa se si so ta te ti to va ve vi wa we ya yo za st tr ch sh th"
).split(" ");
const ENDINGS = ["", "", "", "s", "ed", "ing", "er", "ly", "tion", "ness", "'s", "é"];

/** About 2,000 distinct words, the common ones first (ranks for the Zipf draw). */
const VOCABULARY: string[] = (() => {
  const next = random(2024);
  const words = new Set(COMMON);
  while (words.size < 2000) {
    let w = "";
    const syllables = 1 + Math.floor(next() * 3);
    for (let i = 0; i < syllables; i++) w += SYLLABLES[Math.floor(next() * SYLLABLES.length)];
    words.add(w + ENDINGS[Math.floor(next() * ENDINGS.length)]);
  }
  return [...words];
})();

/** Cumulative Zipf-like weights (exponent 1.05) over VOCABULARY's ranks. */
const CUMULATIVE: Float64Array = (() => {
  const out = new Float64Array(VOCABULARY.length);
  let sum = 0;
  for (let r = 0; r < out.length; r++) out[r] = sum += 1 / Math.pow(r + 1, 1.05);
  return out.map((c) => c / sum);
})();

function draw(next: () => number): string {
  const u = next();
  let lo = 0;
  let hi = CUMULATIVE.length - 1;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (CUMULATIVE[mid]! < u) lo = mid + 1;
    else hi = mid;
  }
  return VOCABULARY[lo]!;
}

/**
 * Deterministic English-like text of about `bytes` UTF-8 bytes (it stops after the line that
 * reaches `bytes`): newline-terminated lines of 5–15 words drawn from a Zipf-like distribution,
 * with capitals, punctuation, numbers and a few non-ASCII words ("café", "über").
 */
export function wordText(bytes: number, seed: number): string {
  const next = random(seed);
  const lines: string[] = [];
  let size = 0;
  while (size < bytes) {
    const n = 5 + Math.floor(next() * 11);
    let line = "";
    for (let i = 0; i < n; i++) {
      let w = draw(next);
      const r = next();
      const capital = w.charAt(0).toUpperCase() + w.slice(1);
      if (i === 0) w = capital;
      else if (r < 0.02) w = w.toUpperCase();
      else if (r < 0.05) w = capital;
      else if (r < 0.08) w = String(Math.floor(next() * 2100));
      else if (r < 0.09) w = `${1 + Math.floor(next() * 30)}th`;
      else if (r < 0.1) w = `"${w}"`;
      else if (r < 0.11) w = `(${w})`;
      else if (r < 0.12) w += `-${draw(next)}`;
      if (i > 0) line += " ";
      line += w;
      if (i < n - 1) {
        const p = next();
        if (p < 0.08) line += ",";
        else if (p < 0.09) line += ";";
        else if (p < 0.095) line += ":";
      }
    }
    const end = next();
    line += end < 0.8 ? ".\n" : end < 0.9 ? "?\n" : end < 0.95 ? "!\n" : "\n";
    lines.push(line);
    size += Buffer.byteLength(line);
  }
  return lines.join("");
}

/**
 * `text` cut at line ends into chunks of at most `chunkBytes` UTF-8 bytes; a line longer than
 * that is a chunk of its own. Joined, the chunks are `text`.
 */
export function splitLines(text: string, chunkBytes: number): string[] {
  const chunks: string[] = [];
  let chunkStart = 0;
  let chunkSize = 0;
  let at = 0;
  while (at < text.length) {
    const nl = text.indexOf("\n", at);
    const end = nl < 0 ? text.length : nl + 1;
    const size = Buffer.byteLength(text.slice(at, end));
    if (chunkSize > 0 && chunkSize + size > chunkBytes) {
      chunks.push(text.slice(chunkStart, at));
      chunkStart = at;
      chunkSize = 0;
    }
    chunkSize += size;
    at = end;
  }
  if (chunkSize > 0) chunks.push(text.slice(chunkStart));
  return chunks;
}

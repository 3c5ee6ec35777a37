/**
 * Where blobs live in R2, by sha256: task modules, and task outputs too large to keep inline; and
 * by run, task and attempt: the stderr of an attempt that ended with more than a few KiB of it.
 */

export const moduleKey = (sha256: string) => `modules/${sha256}`;

export const outputKey = (sha256: string) => `outputs/${sha256}`;

export const logKey = (run: string, task: string, attempt: number) => `${logPrefix(run)}${task}/${attempt}`;

/** Every log of run `run` is under this prefix. */
export const logPrefix = (run: string) => `logs/${run}/`;

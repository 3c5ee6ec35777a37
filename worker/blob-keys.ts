/** Where blobs live in R2, by sha256: task modules, and task outputs too large to keep inline. */

export const moduleKey = (sha256: string) => `modules/${sha256}`;

export const outputKey = (sha256: string) => `outputs/${sha256}`;

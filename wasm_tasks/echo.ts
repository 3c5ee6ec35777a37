// echo: outputs its stdin (the task envelope) unchanged. Tests use it to see exactly what a
// task receives: params, inputs, item, index.
import { readStdin } from "./lib/json";

process.stdout.write(readStdin());

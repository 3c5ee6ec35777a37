// ESLint: typescript-eslint's type-aware rules, and the architecture's boundaries as import rules:
// the runner and the CLI never import the worker, core imports only zod and yaml (and nothing
// runtime-specific), and no module imports itself in a circle.
import { createNodeResolver, importX } from "eslint-plugin-import-x";
import tseslint from "typescript-eslint";

const boundary = (target, from, message) => ({ target, from, message });

export default tseslint.config(
  { ignores: ["dist/", "node_modules/", ".wrangler/", "coverage/", "test-artifacts/", "wasm_tasks/"] },
  ...tseslint.configs.recommendedTypeChecked,
  {
    languageOptions: { parserOptions: { projectService: true, tsconfigRootDir: import.meta.dirname } },
    plugins: { "import-x": importX },
    settings: {
      "import-x/extensions": [".ts", ".js"],
      "import-x/parsers": { "@typescript-eslint/parser": [".ts"] },
      "import-x/resolver-next": [
        createNodeResolver({ extensions: [".ts", ".js"], extensionAlias: { ".js": [".ts", ".js"] } }),
      ],
    },
    rules: {
      "@typescript-eslint/no-floating-promises": "error",
      "@typescript-eslint/no-misused-promises": "error",
      "@typescript-eslint/consistent-type-imports": ["error", { fixStyle: "inline-type-imports" }],
      "@typescript-eslint/no-unused-vars": [
        "error",
        { argsIgnorePattern: "^_", varsIgnorePattern: "^_", destructuredArrayIgnorePattern: "^_" },
      ],
      "import-x/no-cycle": ["error", { ignoreExternal: true }],
      "import-x/no-restricted-paths": [
        "error",
        {
          zones: [
            boundary("./runner", "./worker", "the runner ships without the worker: shared code belongs in core/"),
            boundary("./cli", "./worker", "the CLI ships without the worker: shared code belongs in core/"),
            boundary("./runner", "./cli", "the runner package holds runner/ and core/ only"),
            boundary("./cli", "./runner", "the CLI package holds cli/ and core/ only"),
            boundary("./cli", "./dev", "the CLI package holds cli/ and core/ only; dev/ is the local harness"),
            boundary("./runner", "./dev", "the runner package holds runner/ and core/ only; dev/ is the local harness"),
            boundary(
              "./core",
              ["./worker", "./runner", "./cli", "./dev", "./bench", "./test", "./scripts", "./page"],
              "core/ imports only zod, yaml and itself",
            ),
            boundary(
              "./page",
              ["./worker", "./runner", "./cli", "./dev", "./bench", "./test", "./scripts"],
              "the status page imports only core/ (the API types, formats and the DAG parser) and itself",
            ),
          ],
        },
      ],
    },
  },
  {
    // core/ runs in workerd, Node and the browser: no Node or Cloudflare modules, no other package.
    files: ["core/**/*.ts"],
    rules: {
      "no-restricted-imports": [
        "error",
        {
          patterns: [
            { regex: "^(?!zod$|yaml$|\\.{1,2}/)", message: "core/ imports only zod, yaml and its own modules" },
          ],
        },
      ],
    },
  },
  {
    // The status page runs in the browser: what it shares with the coordinator comes from core/;
    // zod only to set its CSP-safe mode (page/zod-csp.ts).
    files: ["page/**/*.ts"],
    rules: {
      "no-restricted-imports": [
        "error",
        {
          patterns: [{ regex: "^(?!zod$|\\.{1,2}/)", message: "the page imports only core/, zod and its own modules" }],
        },
      ],
    },
  },
  {
    // Tests read JSON answers and frames as `any` and let their assertions check the shape.
    files: ["test/**/*.ts"],
    rules: {
      "@typescript-eslint/no-unsafe-assignment": "off",
      "@typescript-eslint/no-unsafe-member-access": "off",
      "@typescript-eslint/no-unsafe-argument": "off",
      "@typescript-eslint/no-unsafe-return": "off",
    },
  },
  {
    files: ["**/*.js"],
    ...tseslint.configs.disableTypeChecked,
  },
);

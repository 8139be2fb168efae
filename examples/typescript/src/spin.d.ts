// The Spin interface this component imports (wit/variables.wit); componentize-js turns a
// `result` error into a thrown error whose `payload` is the WIT variant.
declare module 'fermyon:spin/variables@2.0.0' {
  export function get(name: string): string;
}

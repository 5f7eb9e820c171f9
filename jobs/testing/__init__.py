"""Development tools the tests and the benchmarks share: real worker and beat processes, and
throwaway databases. Never imported by the running site."""

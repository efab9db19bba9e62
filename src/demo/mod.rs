//! The throwaway PostgreSQL cluster behind `charon demo`.

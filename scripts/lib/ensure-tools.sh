# Sourced by scripts/: makes sure the tools the project builds with are present.
# rustup is on the machine; rustfmt, clippy and cargo-nextest are added when missing, and
# cargo-machete (the unused-dependency check of scripts/test) by ensure_machete.

ensure_rust() {
  if ! command -v cargo >/dev/null 2>&1; then
    echo "error: cargo not found; install Rust with rustup (https://rustup.rs)" >&2
    exit 3
  fi
  if ! cargo fmt --version >/dev/null 2>&1 || ! cargo clippy --version >/dev/null 2>&1; then
    rustup component add rustfmt clippy
  fi
  if ! cargo nextest --version >/dev/null 2>&1; then
    cargo install --locked cargo-nextest
  fi
}

ensure_machete() {
  if ! cargo machete --version >/dev/null 2>&1; then
    cargo install --locked cargo-machete
  fi
}

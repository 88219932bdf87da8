//! placeholder until sqld lands

//! Models run in-process on the CPU with candle.

mod bert;
pub mod chat;
mod decoder;
pub mod embed;
pub mod guided;
mod math;
mod q8;
mod spm;
pub mod template;

pub use chat::{Generated, LocalChat, LocalChatOptions};
pub use embed::{BertEmbedder, LocalEmbedder};

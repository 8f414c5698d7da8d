//! A tokenizer for GGUF files with a SentencePiece vocabulary
//! (`tokenizer.ggml.model = llama`: Gemma, and Llama 1/2-era models), which
//! candle's `from_gguf` does not build.
//!
//! SentencePiece BPE repeatedly merges the adjacent pair whose merged piece
//! has the best score. The `tokenizers` BPE model merges by rank, so every
//! way of splitting a normal piece into two normal pieces becomes a merge,
//! ranked by the whole piece's score. Characters outside the vocabulary
//! fall back to `<0xNN>` byte pieces. Control tokens (`<bos>`,
//! `<start_of_turn>`...) are special; user-defined ones (runs of spaces or
//! newlines, HTML tags) are matched verbatim in the text, as SentencePiece
//! and llama.cpp do.

use candle_core::quantized::gguf_file;
use std::collections::HashMap;
use tokenizers::decoders::byte_fallback::ByteFallback;
use tokenizers::decoders::fuse::Fuse;
use tokenizers::decoders::sequence::Sequence;
use tokenizers::models::bpe::BPE;
use tokenizers::normalizers::replace::Replace;
use tokenizers::normalizers::{Prepend, Sequence as NormalizerSequence};
use tokenizers::{AddedToken, DecoderWrapper, NormalizerWrapper, Tokenizer};

/// SentencePiece token types, as llama.cpp writes them.
const NORMAL: i32 = 1;
const CONTROL: i32 = 3;
const USER_DEFINED: i32 = 4;

fn array<'a>(ct: &'a gguf_file::Content, key: &str) -> Result<&'a Vec<gguf_file::Value>, String> {
    ct.metadata
        .get(key)
        .ok_or_else(|| format!("missing {key}"))?
        .to_vec()
        .map_err(|e| format!("{key}: {e}"))
}

/// Whether the GGUF's vocabulary is SentencePiece's.
pub fn is_sentencepiece(ct: &gguf_file::Content) -> bool {
    ct.metadata
        .get("tokenizer.ggml.model")
        .and_then(|v| v.to_string().ok())
        .is_some_and(|m| m == "llama")
}

/// Build the tokenizer of a SentencePiece GGUF.
pub fn from_gguf(ct: &gguf_file::Content) -> Result<Tokenizer, String> {
    let tokens = array(ct, "tokenizer.ggml.tokens")?
        .iter()
        .map(|v| v.to_string().cloned().map_err(|e| e.to_string()))
        .collect::<Result<Vec<String>, _>>()?;
    let scores = array(ct, "tokenizer.ggml.scores")?
        .iter()
        .map(|v| v.to_f32().map_err(|e| e.to_string()))
        .collect::<Result<Vec<f32>, _>>()?;
    let types = array(ct, "tokenizer.ggml.token_type")?
        .iter()
        .map(|v| v.to_i32().map_err(|e| e.to_string()))
        .collect::<Result<Vec<i32>, _>>()?;
    if tokens.len() != scores.len() || tokens.len() != types.len() {
        return Err(format!(
            "{} tokens, {} scores and {} types",
            tokens.len(),
            scores.len(),
            types.len()
        ));
    }
    let normal = |id: usize| types[id] == NORMAL;
    let ids: HashMap<&str, usize> = tokens
        .iter()
        .enumerate()
        .map(|(id, t)| (t.as_str(), id))
        .collect();

    // (score of the merged piece, left, right)
    let mut ranked: Vec<(f32, usize, usize)> = Vec::new();
    for (merged, piece) in tokens.iter().enumerate().filter(|(id, _)| normal(*id)) {
        for (at, _) in piece.char_indices().skip(1) {
            let (left, right) = piece.split_at(at);
            if let (Some(&l), Some(&r)) = (ids.get(left), ids.get(right))
                && normal(l)
                && normal(r)
            {
                ranked.push((scores[merged], l, r));
            }
        }
    }
    // Best score first; ties in id order, so the result is deterministic.
    ranked.sort_by(|a, b| {
        b.0.total_cmp(&a.0)
            .then_with(|| a.1.cmp(&b.1))
            .then_with(|| a.2.cmp(&b.2))
    });
    let merges = ranked
        .into_iter()
        .map(|(_, l, r)| (tokens[l].clone(), tokens[r].clone()))
        .collect();
    let vocab: tokenizers::models::bpe::Vocab = tokens
        .iter()
        .enumerate()
        .map(|(id, t)| (t.clone(), id as u32))
        .collect();
    let unk = ct
        .metadata
        .get("tokenizer.ggml.unknown_token_id")
        .and_then(|v| v.to_u32().ok())
        .and_then(|id| tokens.get(id as usize).cloned())
        .unwrap_or_else(|| "<unk>".into());
    let bpe = BPE::builder()
        .vocab_and_merges(vocab, merges)
        .unk_token(unk)
        .fuse_unk(true)
        .byte_fallback(true)
        .build()
        .map_err(|e| e.to_string())?;

    let mut tokenizer = Tokenizer::new(bpe);
    // Spaces are "▁" in the vocabulary. Llama-era models also put one in
    // front of the text; Gemma does not (add_space_prefix = false).
    let add_space_prefix = ct
        .metadata
        .get("tokenizer.ggml.add_space_prefix")
        .and_then(|v| v.to_bool().ok())
        .unwrap_or(true);
    let spaces: NormalizerWrapper = Replace::new(" ", "▁").map_err(|e| e.to_string())?.into();
    let normalizer: NormalizerWrapper = if add_space_prefix {
        NormalizerSequence::new(vec![Prepend::new("▁".into()).into(), spaces]).into()
    } else {
        spaces
    };
    tokenizer
        .with_normalizer(Some(normalizer))
        .map_err(|e| e.to_string())?;
    let decoders: Vec<DecoderWrapper> = vec![
        Replace::new("▁", " ").map_err(|e| e.to_string())?.into(),
        ByteFallback::new().into(),
        Fuse::new().into(),
    ];
    tokenizer.with_decoder(Some(Sequence::new(decoders)));
    let of_type = |wanted: i32, special: bool| -> Vec<AddedToken> {
        tokens
            .iter()
            .zip(&types)
            .filter(|(_, t)| **t == wanted)
            .map(|(tok, _)| AddedToken::from(tok.clone(), special).normalized(false))
            .collect()
    };
    tokenizer
        .add_special_tokens(of_type(CONTROL, true))
        .map_err(|e| e.to_string())?;
    tokenizer
        .add_tokens(of_type(USER_DEFINED, false))
        .map_err(|e| e.to_string())?;
    Ok(tokenizer)
}

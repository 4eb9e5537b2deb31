//! `#[derive(Module)]`: implements `ferrograd_nn::Module` for a struct from its fields.
//!
//! Every field is visited under its own name (`fc1` gives `fc1.weight`, `fc1.bias`), as PyTorch
//! names the attributes of an `nn.Module`: a `Tensor` field is a parameter, a field that is a
//! module is visited recursively, an `Option` is visited when `Some`, a `Vec` gives `layers.0`,
//! `layers.1`, ..., an `RngStream` is a random stream (checkpoints keep it). Attributes:
//!
//! - `#[module(skip)]`: not visited (sizes, settings, anything that is neither);
//! - `#[module(buffer)]`: a `Tensor` that is state but not trained (running statistics);
//! - `#[module(rename = "transformer.wte")]`: the name to use instead of the field's.
//!
//! The struct needs a `training: bool` field: `set_training` sets it and every visited field's
//! mode, `is_training` reads it.

use proc_macro::TokenStream;
use proc_macro2::TokenStream as Tokens;
use quote::quote;
use syn::{parse_macro_input, Data, DeriveInput, Fields, LitStr};

/// The path of ferrograd-nn as the deriving crate sees it.
fn nn_path() -> Tokens {
    use proc_macro_crate::{crate_name, FoundCrate};
    match crate_name("ferrograd-nn") {
        Ok(FoundCrate::Itself) => quote!(crate),
        Ok(FoundCrate::Name(n)) => {
            let id = syn::Ident::new(&n, proc_macro2::Span::call_site());
            quote!(::#id)
        }
        Err(_) => match crate_name("ferrograd") {
            Ok(FoundCrate::Name(n)) => {
                let id = syn::Ident::new(&n, proc_macro2::Span::call_site());
                quote!(::#id::nn)
            }
            _ => quote!(::ferrograd_nn),
        },
    }
}

enum Kind {
    Skip,
    Buffer,
    Visit,
}

#[proc_macro_derive(Module, attributes(module))]
pub fn derive_module(input: TokenStream) -> TokenStream {
    let input = parse_macro_input!(input as DeriveInput);
    match expand(&input) {
        Ok(t) => t.into(),
        Err(e) => e.to_compile_error().into(),
    }
}

fn expand(input: &DeriveInput) -> syn::Result<Tokens> {
    let nn = nn_path();
    let name = &input.ident;
    let (impl_g, ty_g, where_g) = input.generics.split_for_impl();
    let Data::Struct(data) = &input.data else {
        return Err(syn::Error::new_spanned(
            input,
            "derive(Module) needs a struct",
        ));
    };
    let Fields::Named(fields) = &data.fields else {
        return Err(syn::Error::new_spanned(
            input,
            "derive(Module) needs named fields",
        ));
    };
    let mut has_training = false;
    let (mut params, mut buffers, mut rngs, mut modes) = (vec![], vec![], vec![], vec![]);
    for f in &fields.named {
        let Some(ident) = &f.ident else { continue };
        if ident == "training" {
            has_training = true;
            continue;
        }
        let mut kind = Kind::Visit;
        let mut key = ident.to_string();
        for attr in &f.attrs {
            if !attr.path().is_ident("module") {
                continue;
            }
            attr.parse_nested_meta(|m| {
                if m.path.is_ident("skip") {
                    kind = Kind::Skip;
                } else if m.path.is_ident("buffer") {
                    kind = Kind::Buffer;
                } else if m.path.is_ident("rename") {
                    key = m.value()?.parse::<LitStr>()?.value();
                } else {
                    return Err(m.error("expected skip, buffer or rename = \"...\""));
                }
                Ok(())
            })?;
        }
        match kind {
            Kind::Skip => {}
            Kind::Buffer => buffers.push(quote! {
                f(&#nn::module::join(prefix, #key), &self.#ident);
            }),
            Kind::Visit => {
                params.push(quote! {
                    #nn::module::Visit::visit_params(&self.#ident, &#nn::module::join(prefix, #key), f);
                });
                buffers.push(quote! {
                    #nn::module::Visit::visit_bufs(&self.#ident, &#nn::module::join(prefix, #key), f);
                });
                rngs.push(quote! {
                    #nn::module::Visit::visit_rngs(&self.#ident, &#nn::module::join(prefix, #key), f);
                });
                modes.push(quote! {
                    #nn::module::Visit::set_mode(&mut self.#ident, training);
                });
            }
        }
    }
    if !has_training {
        return Err(syn::Error::new_spanned(
            name,
            "derive(Module) needs a `training: bool` field (the train/eval mode)",
        ));
    }
    let tensor = quote!(#nn::module::Tensor);
    Ok(quote! {
        impl #impl_g #nn::Module for #name #ty_g #where_g {
            fn visit_parameters(&self, prefix: &str, f: &mut dyn FnMut(&str, &#tensor)) {
                let _ = (prefix, &f);
                #(#params)*
            }
            fn visit_buffers(&self, prefix: &str, f: &mut dyn FnMut(&str, &#tensor)) {
                let _ = (prefix, &f);
                #(#buffers)*
            }
            fn visit_rng_streams(&self, prefix: &str, f: &mut dyn FnMut(&str, &#nn::RngStream)) {
                let _ = (prefix, &f);
                #(#rngs)*
            }
            fn set_training(&mut self, training: bool) {
                self.training = training;
                #(#modes)*
            }
            fn is_training(&self) -> bool {
                self.training
            }
        }
    })
}

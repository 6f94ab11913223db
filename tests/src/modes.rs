//! Running one end-to-end scenario in each ingress mode: the macros the
//! namespace tests declare their tests with. A scenario is a function
//! `fn name(tag: &str, mode: Ingress)` (`tag` names the test's namespaces,
//! a few characters); the macro makes a module `name` of `#[test]`s.

/// `$name(tag, mode)` as `$name::xdp` and `$name::tc`.
#[macro_export]
macro_rules! both_modes {
    ($name:ident, $tag:literal) => {
        mod $name {
            #[test]
            fn xdp() {
                super::$name($tag, $crate::topology::Ingress::Xdp);
            }

            #[test]
            fn tc() {
                super::$name($tag, $crate::topology::Ingress::Tc);
            }
        }
    };
}

/// `$name(tag, mode)` as `$name::tc` only.
#[macro_export]
macro_rules! tc_only {
    ($name:ident, $tag:literal) => {
        mod $name {
            #[test]
            fn tc() {
                super::$name($tag, $crate::topology::Ingress::Tc);
            }
        }
    };
}

/// `$name(tag, mode, fast_path)` in both ingress modes, without and with
/// `--fast-path` (`$tag` ≤ 3 characters: the fast-path runs get an `f`
/// appended).
#[macro_export]
macro_rules! four_ways {
    ($name:ident, $tag:literal) => {
        mod $name {
            #[test]
            fn xdp() {
                super::$name($tag, $crate::topology::Ingress::Xdp, false);
            }

            #[test]
            fn tc() {
                super::$name($tag, $crate::topology::Ingress::Tc, false);
            }

            #[test]
            fn xdp_fast_path() {
                super::$name(concat!($tag, "f"), $crate::topology::Ingress::Xdp, true);
            }

            #[test]
            fn tc_fast_path() {
                super::$name(concat!($tag, "f"), $crate::topology::Ingress::Tc, true);
            }
        }
    };
}

//! Dockerfiles: any text gives a program of stages or a build-file error,
//! never a panic. (Build args are substituted when the steps run, not here.)

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|input: &[u8]| {
    let Ok(text) = std::str::from_utf8(input) else {
        return;
    };
    match wrun_bundler::dockerfile::parse(text, "Dockerfile") {
        Ok(program) => {
            let _ = program.step_count();
        }
        Err(e) => {
            let _ = e.to_string();
        }
    }
});

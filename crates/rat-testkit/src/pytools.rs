//! Python tools that check the API's OpenAPI documents from outside: a spec
//! validator, a property-based API tester (schemathesis) and a client
//! generator (openapi-python-client).
//!
//! Each is installed on first use into a virtualenv of its own under the
//! workspace's `target/` directory (`target/<name>-venv`), with pinned
//! versions, like moto ([`crate::s3`]): a file lock makes concurrent test
//! processes install it once, and a marker naming the pins makes a changed pin
//! install again. Without python3 (with its venv module) or without access to
//! PyPI the tests fail and say what to install; they never skip.

use std::path::PathBuf;

use crate::s3::target_dir;

/// A Python tool installed from PyPI into a virtualenv of its own.
#[derive(Debug, Clone, Copy)]
pub struct PyTool {
    /// Names the virtualenv (`target/<name>-venv`) and its lock.
    pub name: &'static str,
    /// The pinned requirements handed to pip.
    pub packages: &'static [&'static str],
    /// The script in the virtualenv's `bin/` the tests run.
    pub script: &'static str,
}

/// `openapi-spec-validator`: validates an OpenAPI 2.0/3.0/3.1 document.
pub const OPENAPI_SPEC_VALIDATOR: PyTool = PyTool {
    name: "openapi-spec-validator",
    packages: &["openapi-spec-validator==0.9.0", "jsonschema==4.26.0"],
    script: "openapi-spec-validator",
};

/// schemathesis 4: property-based tests of an API from its OpenAPI document.
pub const SCHEMATHESIS: PyTool = PyTool {
    name: "schemathesis",
    packages: &["schemathesis==4.32.5", "hypothesis==6.170.27"],
    script: "schemathesis",
};

/// openapi-python-client: generates a typed Python client (httpx + attrs)
/// from an OpenAPI 3 document. The generated client runs in the same
/// virtualenv, which has its dependencies.
pub const OPENAPI_PYTHON_CLIENT: PyTool = PyTool {
    name: "openapi-python-client",
    packages: &[
        "openapi-python-client==0.29.1",
        "httpx==0.28.1",
        "attrs==26.1.0",
        "python-dateutil==2.9.0.post0",
    ],
    script: "openapi-python-client",
};

impl PyTool {
    /// The line every "cannot provide this tool" failure ends with.
    pub fn hint(&self) -> String {
        format!(
            "this test runs {} (PyPI `{}`) from a virtualenv it creates under target/{}-venv; it needs python3 with \
             its venv module (Debian: `apt-get install -y python3-venv python3-pip`) and network access to PyPI on \
             first use",
            self.name,
            self.packages.join(" "),
            self.name
        )
    }

    /// The virtualenv's directory.
    pub fn venv(&self) -> PathBuf {
        target_dir().join(format!("{}-venv", self.name))
    }

    /// The virtualenv's python.
    pub fn python(&self) -> PathBuf {
        self.venv().join("bin").join("python")
    }

    /// Makes sure the tool is installed; returns the path of its script.
    /// Installs it when missing or incomplete, under a file lock shared by
    /// every process.
    pub fn ensure_installed(&self) -> Result<PathBuf, String> {
        let venv = self.venv();
        let script = venv.join("bin").join(self.script);
        let hint = self.hint();
        let pins = self.packages.join("\n");
        let lock = format!("{}-venv.lock", self.name);
        crate::install::install_once(&venv, &lock, &pins, &script, self.name, &hint, || {
            crate::install::pip_into_venv(&venv, self.packages, self.name, &hint)
        })?;
        Ok(script)
    }

    /// [`PyTool::ensure_installed`], failing the test with the reason.
    pub fn installed(&self) -> PathBuf {
        self.ensure_installed()
            .unwrap_or_else(|e| panic!("cannot install {}: {e}", self.name))
    }
}

# Sourced by the device scripts (gpu_check.sh, device_run.sh) with $out set: installs the
# wheels carried in .carry/ (experiments/gpu_carry.sh puts ml-collections and orbax there)
# without network into /tmp/carry_site, and puts it and the repository on PYTHONPATH.
if compgen -G ".carry/*.whl" > /dev/null; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target /tmp/carry_site .carry/*.whl || exit 1
  export PYTHONPATH=/tmp/carry_site${PYTHONPATH:+:$PYTHONPATH}
  # The carried Orbax was tested with this machine's jax, not necessarily with the device's:
  # if it does not import there, fall back to the device's own.
  if ! python3 -c "import orbax.checkpoint" 2> /tmp/carry_orbax.log; then
    echo "the carried orbax-checkpoint does not import; using the device's:" | tee -a "$out/$log"
    tail -3 /tmp/carry_orbax.log | tee -a "$out/$log"
    rm -rf /tmp/carry_site/orbax /tmp/carry_site/orbax_checkpoint-*
  fi
fi
export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH} PYTHONUNBUFFERED=1

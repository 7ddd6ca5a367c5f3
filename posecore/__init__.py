"""PoseFit core: fit a 3D human body to a photo by differentiable inverse rendering.

Pure PyTorch; never imports ``bpy``. Packages by domain:

- :mod:`posecore.bodies`   body models (SMPL-X, Anny) behind one interface
- :mod:`posecore.cameras`  pinhole cameras (Blender / OpenCV conventions) and the orbit angle
- :mod:`posecore.render`   differentiable renderers (built-in rasteriser, Mitsuba 3, redner)
- :mod:`posecore.fitting`  losses, looks (selective inverse rendering), presets, the optimisation loop
- :mod:`posecore.io`       initialisation files, images, result files
- :mod:`posecore.metrics`  image error, MPJPE, PA-MPJPE
"""

__version__ = "0.1.0"

"""Start from a photo alone: detect the person, initialise the body and its camera.

- :mod:`posecore.detect.landmarks`: MediaPipe Pose (imported lazily; only these commands need it) -> 33 landmarks
  in 2D and 3D and a person mask.
- :mod:`posecore.detect.joint_map`: which landmark plays which body joint, for SMPL-X and Anny.
- :mod:`posecore.detect.kinematics`: joints-only forward kinematics, fast enough to optimise in milliseconds.
- :mod:`posecore.detect.camera_solve`: focal length (EXIF or a stated default) and the camera translation.
- :mod:`posecore.detect.initialise`: bone directions from the 3D landmarks, camera, 2D refinement.
- :mod:`posecore.detect.photo`: the one call the CLI and Blender use: :func:`~posecore.detect.photo.photo_start`.
"""
